"""robench.report.html: the self-contained HTML page, rendered in headless Chromium (the tables sort
on a click, the plots show), and its plots embedded as base64 PNGs."""

import base64
import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from formats import png_size

from robench.report import leaderboard as R

pytest.importorskip("matplotlib")


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
