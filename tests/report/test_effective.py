"""robench.report.effective against a hand computation: a logit (and probit) least-squares line over
fixture runs, each run's effective robustness, the seeded bootstrap interval, the baseline set, the
shifts (mean -C accuracy, C-bar, another dataset's clean accuracy), and the command line."""

import importlib.util
import math
from statistics import NormalDist

import numpy as np
import pytest
from benchfiles import c_eval, cbar_eval
from runfolders import constant, make_run
from typer.testing import CliRunner

from robench.cli import app
from robench.errors import RobenchError
from robench.report import leaderboard as R
from robench.report import views as V

# (name, clean accuracy %, mean -C accuracy %): three baseline runs and one more robust run.
RUNS = [("base-a", 70.0, 50.0), ("base-b", 80.0, 60.0), ("base-c", 90.0, 75.0), ("robust", 85.0, 72.0)]


def logit(p):
    return math.log(p / (1 - p))


def hand_er(points, link, baseline):
    """Least squares of link(y) on link(x) over the baseline points, written out; ER of every point."""
    f = logit if link == "logit" else NormalDist().inv_cdf
    back = (lambda t: 1 / (1 + math.exp(-t))) if link == "logit" else NormalDist().cdf
    xs = [f(x / 100) for name, x, y in points if name in baseline]
    ys = [f(y / 100) for name, x, y in points if name in baseline]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)
    intercept = my - slope * mx
    return {name: y - 100 * back(slope * f(x / 100) + intercept) for name, x, y in points}, slope, intercept


def make(root, runs=RUNS):
    for k, (name, clean, shifted) in enumerate(runs):
        make_run(root, name, errors=constant(100 - shifted), clean=100 - clean, dataset="cifar10", lr=0.01 * (k + 1))


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_effective_robustness_by_hand(tmp_path, link):
    make(tmp_path)
    rep = R.report([tmp_path], effective=dict(shift="c", baseline="base-*", link=link))
    er = rep.effective
    expected, slope, intercept = hand_er(RUNS, link, {"base-a", "base-b", "base-c"})
    got = dict(zip(er.points["run"], er.points["ER"]))
    for name in expected:
        assert got[name] == pytest.approx(expected[name], abs=1e-9), name
    (fit,) = er.fits.values()
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)
    assert fit.baseline == ["base-a", "base-b", "base-c"] and list(er.points["baseline"]) == [True, True, True, False]
    assert expected["robust"] > 2  # 72 % where the line predicts less than 70 %
    assert "mean -C accuracy" in fit.label and fit.label.startswith("cifar10: ")


def test_the_bootstrap_resamples_baseline_runs_and_is_seeded(tmp_path):
    # Four baseline runs on one logit line: every resample refits that line, so the interval is the point.
    line = [(f"on-{k}", x, 100 / (1 + math.exp(-(0.8 * logit(x / 100) - 0.5)))) for k, x in enumerate((60, 70, 80, 90))]
    make(tmp_path / "line", line + [("robust", 85.0, 80.0)])
    er = R.report([tmp_path / "line"], effective=dict(shift="c", baseline="on-*")).effective
    robust = er.points[er.points["run"] == "robust"].iloc[0]
    assert robust["ER low"] == pytest.approx(robust["ER"], abs=1e-3) and robust["ER high"] == pytest.approx(robust["ER"], abs=1e-3)
    # Off the line: an interval of some width, identical from one report to the next.
    make(tmp_path / "noisy")
    first = R.report([tmp_path / "noisy"], effective=dict(shift="c")).effective.points
    again = R.report([tmp_path / "noisy"], effective=dict(shift="c")).effective.points
    assert (first["ER high"] - first["ER low"] > 0.5).all()
    assert first[["ER low", "ER high"]].equals(again[["ER low", "ER high"]])
    # By hand, the same resampling: default_rng(0), 1000 draws of 4 indices, degenerate samples skipped.
    x, y = first["clean acc"].to_numpy(), first["shifted acc"].to_numpy()
    rng, ers = np.random.default_rng(0), []
    for _ in range(1000):
        pick = rng.integers(0, 4, size=4)
        if len(set(x[pick])) > 1:
            _, a, b = hand_er([(str(i), x[i], y[i]) for i in pick], "logit", {str(i) for i in pick})
            ers.append(y[3] - 100 / (1 + math.exp(-(a * logit(x[3] / 100) + b))))
    assert first["ER low"].iloc[3] == pytest.approx(np.percentile(ers, 2.5)) and first["ER high"].iloc[3] == pytest.approx(np.percentile(ers, 97.5))


def test_shift_to_another_dataset_and_to_cbar(tmp_path):
    make(tmp_path)
    for k, (name, clean, shifted) in enumerate(RUNS):
        # CIFAR-10.1: a clean-only evaluation, 8 points below the clean accuracy (10 for the last run).
        c_eval(tmp_path / name, constant(0), clean=100 - clean + (10 if name == "robust" else 8), dataset="cifar10.1",
               source="official", protocol="cifar10-c", storage="none", corruptions=(), name="cifar10.1-official.csv")
        cbar_eval(tmp_path / name, constant(100 - shifted + 5), clean=100 - clean)
    er = R.report([tmp_path], effective=dict(shift="cifar10.1", baseline="base-a,base-b,base-c")).effective
    points = [(n, c, c - (10 if n == "robust" else 8)) for n, c, _ in RUNS]
    expected, _, _ = hand_er(points, "logit", {"base-a", "base-b", "base-c"})
    assert dict(zip(er.points["run"], er.points["ER"])) == pytest.approx(expected)
    assert list(er.fits) == ["cifar10 -> cifar10.1 accuracy"]
    cbar = R.report([tmp_path], effective=dict(shift="c-bar")).effective
    expected, _, _ = hand_er([(n, c, s - 5) for n, c, s in RUNS], "logit", {n for n, _, _ in RUNS})
    assert dict(zip(cbar.points["run"], cbar.points["ER"])) == pytest.approx(expected)


def test_bad_effective_robustness_requests(tmp_path):
    make(tmp_path)
    with pytest.raises(RobenchError, match="no run has an evaluation on cifar10.1"):
        R.report([tmp_path], effective=dict(shift="cifar10.1"))
    with pytest.raises(RobenchError, match="--er-baseline 'resnet-\\*' matches none"):
        R.report([tmp_path], effective=dict(shift="c", baseline="resnet-*"))
    with pytest.raises(RobenchError, match="unknown --er-link 'linear'"):
        R.report([tmp_path], effective=dict(shift="c", link="linear"))
    one = R.report([tmp_path], effective=dict(shift="c", baseline="base-a"))
    assert one.effective.fits == {} and "at least two different clean accuracies" in one.warnings[-1]


def test_effective_robustness_in_the_report(tmp_path):
    make(tmp_path)
    rep = R.report([tmp_path], effective=dict(shift="c", baseline="base-*"))
    header, rows = V.display_tables(rep)["effective"]
    row = next(r for r in rows if r[0] == "robust")
    assert header == ["run", "fit", "baseline", "clean acc", "shifted acc", "predicted", "ER", "ER 95 % interval"]
    assert row[3:5] == ["85.00", "72.00"] and row[6].startswith("+") and row[7].startswith("[")
    md = R.render(rep, "md")
    assert "## Effective robustness" in md and "logit(y) = " in md
    assert "effective" in __import__("json").loads(R.render(rep, "json"))
    assert "effective" not in V.display_tables(R.report([tmp_path]))  # only when asked for


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_effective_robustness_command_line(tmp_path):
    make(tmp_path / "runs")
    result = invoke("report", tmp_path / "runs", "--effective-robustness", "c", "--er-baseline", "base-*",
                    "--er-link", "probit")
    assert result.exit_code == 0, result.output
    assert "Effective robustness" in result.stdout and "probit(y) = " in result.stdout
    bad = invoke("report", tmp_path / "runs", "--effective-robustness", "c", "--er-link", "linear")
    assert bad.exit_code == 2 and "unknown --er-link 'linear'" in bad.stderr


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="the plot needs matplotlib")
def test_effective_robustness_plot_in_the_html_page(tmp_path):
    from robench.report.plots import figures

    make(tmp_path)
    for link in ("logit", "probit"):
        rep = R.report([tmp_path], effective=dict(shift="c", baseline="base-*", link=link))
        assert "effective-robustness" in figures(rep)
    page = R.render(rep, "html")
    assert 'alt="effective-robustness"' in page and "Effective robustness" in page
    assert "effective-robustness" not in figures(R.report([tmp_path]))
