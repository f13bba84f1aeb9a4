"""What the report writes: PNG plots, the self-contained HTML page (rendered in headless Chromium),
RobustBench model cards, and the `robench report` command line."""

import base64
import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from runfolders import STANDARD, constant, make_run
from typer.testing import CliRunner

from robench.report import leaderboard as R
from robench.cli import app

pytest.importorskip("matplotlib")


def seeds(root, prefix, mces, **kw):
    for seed, m in enumerate(mces):
        make_run(root, f"{prefix}-s{seed}", errors=lambda i, c, s, m=m: m + s + (i % 4), clean=4.0 + seed, seed=seed,
                 **kw)


def calibration(i, c, s):
    return dict(nll=0.2 * s, brier=0.02 * s, ece=0.01 * s, rms_ce=0.015 * s)


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    seeds(root, "standard", [30.0, 32.0, 31.0], calibration=calibration)
    seeds(root, "augmix", [18.0, 19.5, 20.0], policy="augmix", jsd=True, calibration=calibration)
    make_run(root, "unevaluated", errors=None, clean=6.25, lr=0.3)
    return root


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plots_are_readable_pngs_and_differ_between_result_sets(two_groups, tmp_path):
    from robench.report.plots import figures, write_plots

    rep = R.report([two_groups], baseline="standard")
    written = write_plots(rep, tmp_path / "a")
    assert sorted(p.name for p in written) == ["calibration-vs-severity.png", "clean-vs-mce.png",
                                               "corruption-heatmap.png", "error-vs-severity.png"]
    for path in written:
        width, height = png_size(path.read_bytes())
        assert width >= 600 and height >= 300, path.name
    other = tmp_path / "other"
    seeds(other, "standard", [40.0, 45.0, 41.0])
    seeds(other, "augmix", [10.0, 12.5, 11.0], policy="augmix", jsd=True)
    changed = figures(R.report([other]))
    assert "calibration-vs-severity" not in changed  # no calibration columns, no calibration plot
    for name in changed:
        assert changed[name] != (tmp_path / "a" / f"{name}.png").read_bytes(), name
    # The same results draw the same bytes (no timestamps).
    assert figures(rep)["error-vs-severity"] == (tmp_path / "a" / "error-vs-severity.png").read_bytes()


def test_robustbench_model_cards(two_groups, tmp_path):
    from robench.report.robustbench import write_cards

    rep = R.report([two_groups])
    warnings = write_cards(rep, tmp_path / "rb")
    folder = tmp_path / "rb" / "shapes10" / "corruptions"
    card = json.loads((folder / "augmix-s1_generated.json").read_text())
    # The fields of RobustBench's model_info/<dataset>/corruptions/*.json, in its order.
    assert list(card) == ["link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                          "architecture", "eps", "clean_acc", "reported", "corruptions_acc", "footnote"]
    # augmix-s1: clean 5.0; cell error 19.5 + s + (i % 4): mean over s = 22.5, over i = 0..14 of i % 4 = 21/15.
    assert card["clean_acc"] == "95.00" and card["eps"] is None and card["additional_data"] is False
    assert card["corruptions_acc"] == f"{100 - (22.5 + 21 / 15):.2f}" and card["dataset"] == "shapes10"
    lines = (folder / "unaggregated_results.csv").read_text().splitlines()
    assert lines[0].split(",")[1:6] == ["gaussian_noise"] * 5 and lines[1].split(",")[1:6] == ["1", "2", "3", "4", "5"]
    row = next(line.split(",") for line in lines if line.startswith("augmix-s1_generated,"))
    assert len(row) == 1 + 75 and row[1] == f"{1 - (19.5 + 1) / 100:.4f}" and row[-1] == f"{1 - (19.5 + 5 + 14 % 4) / 100:.4f}"
    assert len(list(folder.glob("*.json"))) == 6  # the unevaluated run has no card
    assert any("generated corruptions" in w for w in warnings) and any("no RobustBench" in w for w in warnings)
    assert STANDARD[-1] == lines[0].split(",")[-1]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_report_command_line(two_groups, tmp_path):
    result = invoke("report", two_groups, "--baseline", "standard", "--out", tmp_path / "board.md", "--out",
                    tmp_path / "cells.csv", "--out", tmp_path / "board.tex", "--plots", tmp_path / "plots",
                    "--robustbench", tmp_path / "rb")
    assert result.exit_code == 0, result.output
    assert "| augmix" in result.stdout and "(paired)" in result.stdout and "not evaluated" in result.stdout
    assert (tmp_path / "board.md").read_text() == result.stdout
    assert r"\toprule" in (tmp_path / "board.tex").read_text()
    assert (tmp_path / "cells.csv").read_text().count("\n") == 1 + 6 * 96
    assert len(list((tmp_path / "plots").glob("*.png"))) == 4 and (tmp_path / "rb" / "shapes10").is_dir()
    flat = invoke("report", two_groups, "--no-group", "--format", "csv", "--sort", "clean")
    assert flat.exit_code == 0 and flat.stdout.splitlines()[1].split(",")[1] == "augmix-s0"
    assert len(flat.stdout.splitlines()) == 1 + 7
    for args, message in [(["--out", tmp_path / "x.txt"], "--out must end in"), (["--format", "docx"], "unknown report format"),
                          (["--sort", "speed"], "unknown --sort"), (["--baseline", "nope"], "baseline run 'nope'"),
                          (["--model", "wrn-40-2"], "no run folders match")]:
        bad = invoke("report", two_groups, *args, "--out", tmp_path / "never.md")
        assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.output
        assert not (tmp_path / "never.md").exists()


def test_mixed_test_sets_print_a_warning_line(tmp_path):
    make_run(tmp_path, "a", errors=constant(20.0), n=1000)
    make_run(tmp_path, "b", errors=constant(20.0), n=200, lr=0.1)
    result = invoke("report", tmp_path)
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: shapes10: runs were evaluated on different test sets")


# ----------------------------------------------------------------------------- the page, in a real browser

PROBE = """<script>
window.addEventListener("load", function () {
  const board = document.querySelector("table.sortable");
  const column = Array.from(board.tHead.rows[0].cells).findIndex(function (th) { return th.textContent === "mCE"; });
  const firstRun = function () { return board.tBodies[0].rows[0].cells[1].textContent; };
  board.tHead.rows[0].cells[column].click();
  const ascending = firstRun();
  board.tHead.rows[0].cells[column].click();
  const descending = firstRun();
  const images = Array.from(document.images).map(function (img) {
    return [img.alt, img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width]; });
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({text: document.body.innerText, images: images, ascending: ascending,
                                      descending: descending});
  document.body.appendChild(probe);
});
</script></body>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("Chromium not installed (Debian: apt-get install chromium; make test installs it when it can)")


def test_html_page_in_headless_chromium(two_groups, tmp_path):
    browser = chromium()
    page = R.render(R.report([two_groups], baseline="standard"), "html")
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page) and "<link" not in page
    (tmp_path / "report.html").write_text(page.replace("</body>", PROBE))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", (tmp_path / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the page did not load in Chromium"
    seen = json.loads(html.unescape(found.group(1)))
    text = seen["text"]
    for visible in ("Leaderboard", "augmix", "standard", "unevaluated", "not evaluated", "augmix+jsd",
                    "Error per corruption", "per severity", "RMS-CE"):
        assert visible in text, visible
    # augmix: mCE per seed 22.47, 23.97, 24.47 (m + 3 + 21/15).
    values = np.array([18.0, 19.5, 20.0]) + 3 + 21 / 15
    assert f"{values.mean():.2f} ± {values.std(ddof=1):.2f} (3)" in text
    assert seen["ascending"] == "augmix" and seen["descending"] == "standard"  # "-" stays last
    names = sorted(name for name, *_ in seen["images"])
    assert names == ["calibration-vs-severity", "clean-vs-mce", "corruption-heatmap", "error-vs-severity"]
    for name, width, height, shown_width in seen["images"]:
        assert width > 300 and height > 200 and shown_width > 100, name


def test_html_page_embeds_the_plots_as_png(two_groups):
    page = R.render(R.report([two_groups]), "html")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4 and all(png_size(base64.b64decode(data))[0] > 300 for data in images)
    assert page.count('<table class="sortable">') == 3
