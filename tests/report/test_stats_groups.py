"""robench.report.stats and the groups of seeds in the report: Student's t quantiles and the
paired/Welch difference helpers against tabulated values; a difference against the baseline is
paired by seed (not by the order the runs are listed in), and replicates of one recipe form one
group whatever device each ran on."""

import json
import math
from pathlib import Path

import pytest
import yaml
from runfolders import constant, make_run

from robench.report.leaderboard import report
from robench.report.stats import difference, t_quantile


def board_row(rep, run):
    rows = rep.leaderboard[rep.leaderboard["run"] == run]
    assert len(rows) == 1, f"{run}: {len(rows)} rows in {list(rep.leaderboard['run'])}"
    return rows.iloc[0]


def test_difference_pairs_by_seed_whatever_the_order_given():
    ours = [(2, 31.0), (0, 11.0), (1, 22.0)]  # seed k: the baseline's value + 1, 2, 1
    base = [(0, 10.0), (1, 20.0), (2, 30.0)]
    diff = difference(ours, base)
    diffs = [1.0, 2.0, 1.0]  # by seed 0, 1, 2
    mean = sum(diffs) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert diff.method == "paired" and diff.n == 3
    assert diff.mean == pytest.approx(mean)
    assert diff.half_width == pytest.approx(t_quantile(0.975, 2) * std / math.sqrt(3), rel=1e-9)
    assert difference(base[::-1], ours).half_width == pytest.approx(diff.half_width, rel=1e-9)


def test_baseline_difference_in_the_report_pairs_runs_by_seed_not_by_name(tmp_path):
    # Baseline seeds 0, 1, 2 have mCE 10, 20, 30; ours is 1 worse at every seed, but its run names
    # list the seeds as 2, 0, 1: paired by seed the difference is exactly 1 with no spread.
    for seed, value in enumerate([10.0, 20.0, 30.0]):
        make_run(tmp_path, f"base-s{seed}", errors=constant(value), seed=seed)
    for name, seed in (("aug-a", 2), ("aug-b", 0), ("aug-c", 1)):
        make_run(tmp_path, name, errors=constant(10.0 * seed + 11.0), seed=seed, policy="augmix")
    rep = report([tmp_path], baseline="base")
    aug = board_row(rep, "aug-a (+2)")
    assert aug["seeds"] == "0,1,2" and aug["mCE"] == pytest.approx(21.0)
    assert aug["Δ mCE method"] == "paired" and aug["Δ mCE"] == pytest.approx(1.0)
    assert aug["Δ mCE ci"] == pytest.approx(0.0, abs=1e-9)


def set_device(run: Path, device: str) -> None:
    """The run trained on `device`: its config.yaml, run.json's config and run.json's device say so."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["device"] = device
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    info = json.loads((run / "run.json").read_text())
    info["config"]["device"], info["device"] = device, device
    (run / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize("run_json", [True, False])
def test_seeds_trained_on_different_devices_are_one_group(tmp_path, run_json):
    for seed, device in enumerate(["cuda", "cpu", "cuda:1"]):
        run = make_run(tmp_path, f"r18-s{seed}", errors=constant(10.0 + seed), seed=seed)
        set_device(run, device)
        if not run_json:  # a run killed before run.json: its config.yaml alone describes it
            (run / "run.json").unlink()
    rep = report([tmp_path])
    assert len(rep.leaderboard) == 1, list(rep.leaderboard["run"])
    row = board_row(rep, "r18")
    assert row["size"] == 3 and row["seeds"] == "0,1,2" and row["mCE"] == pytest.approx(11.0)
    assert row["mCE n"] == 3 and row["mCE std"] == pytest.approx(1.0)


def test_runs_of_another_recipe_are_another_group(tmp_path):
    for seed in range(2):
        make_run(tmp_path, f"a-s{seed}", errors=constant(10.0), seed=seed)
    make_run(tmp_path, "a-s2", errors=constant(10.0), seed=2, lr=0.1)  # another learning rate
    rep = report([tmp_path])
    assert sorted(rep.leaderboard["size"]) == [1, 2]


def test_student_t_quantiles_and_difference_helpers():
    for df, expected in [(1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139), (30, 2.042272)]:
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=2e-6)
    assert t_quantile(0.025, 4) == pytest.approx(-2.776445, abs=2e-6)
    # Welch with unequal variances: df = (a + b)^2 / (a^2/(n1-1) + b^2/(n2-1)), here a = 1/3, b = 16/3.
    d = difference([(0, 1.0), (1, 2.0), (2, 3.0)], [(5, 0.0), (6, 4.0), (7, 8.0)])
    a, b = 1 / 3, 16 / 3
    df = (a + b) ** 2 / (a ** 2 / 2 + b ** 2 / 2)
    assert d.method == "welch" and d.half_width == pytest.approx(t_quantile(0.975, df) * math.sqrt(a + b))
    assert 2.776 < t_quantile(0.975, df) < 4.303  # df between 2 and 4
    assert difference([(0, 3.0)], [(0, 1.0)]).half_width is None  # one seed: no interval
