"""robench.report.leaderboard against numbers computed by hand: run folders with hand-made eval CSVs
go through the whole pipeline (tidy table -> views -> text), and every value is checked; and the
`robench report` verb (leaderboard.write_report) on the command line: outputs, plots, cards, one-line errors."""

import importlib.util
import math

import pytest
from runfolders import calibration, constant, make_run, three_seeds
from typer.testing import CliRunner

from robench.cli import app
from robench.errors import RobenchError
from robench.report import leaderboard as R
from robench.report import views as V


def board_row(rep, run):
    rows = rep.leaderboard[rep.leaderboard["run"] == run]
    assert len(rows) == 1, f"{run}: {len(rows)} rows"
    return rows.iloc[0]


def shown(rep, view, run, column):
    header, rows = V.display_tables(rep)[view]
    row = next(r for r in rows if r[header.index("run")] == run)
    return row[header.index(column)]


def test_mce_extra_per_corruption_and_per_severity_by_hand(tmp_path):
    # Corruption i at severity s has error i + s: mean over s is i + 3; over i = 0..14 it is 7 + 3 = 10.
    make_run(tmp_path, "a", errors=lambda i, c, s: float(i + s), clean=5.0)
    rep = R.report([tmp_path])
    row = board_row(rep, "a")
    assert row["mCE"] == pytest.approx(10.0) and row["clean"] == 5.0
    assert row["extra"] == pytest.approx(19.5)  # i = 15..18: (15+16+17+18)/4 + 3, never in mCE
    assert row["gauss"] == pytest.approx(3.0) and row["saturate"] == pytest.approx(18 + 3)
    assert row["s5"] == pytest.approx(7 + 5) and row["s1"] == pytest.approx(7 + 1)
    assert shown(rep, "leaderboard", "a", "mCE") == "10.00" and shown(rep, "corruptions", "a", "shot") == "4.00"
    assert shown(rep, "severities", "a", "s2") == "9.00"


def hand_normalised(ours, base):
    """100 x mean over the 15 of sum_s ours / sum_s base, written out with loops."""
    total = 0.0
    for i in range(15):
        total += sum(ours(i, s) for s in range(1, 6)) / sum(base(i, s) for s in range(1, 6))
    return 100 * total / 15


def hand_relative(ours, ours_clean, base, base_clean):
    total = 0.0
    for i in range(15):
        total += (sum(ours(i, s) - ours_clean for s in range(1, 6))
                  / sum(base(i, s) - base_clean for s in range(1, 6)))
    return 100 * total / 15


def test_normalised_and_relative_mce_are_means_of_ratios_not_ratios_of_totals(tmp_path):
    # The example of docs/metrics.md: 14 corruptions at 20 for both, gaussian_noise 80 (base) vs 40.
    base_err = lambda i, c, s: 80.0 if c == "gaussian_noise" else 20.0  # noqa: E731
    ours_err = lambda i, c, s: 40.0 if c == "gaussian_noise" else 20.0  # noqa: E731
    make_run(tmp_path, "base", errors=base_err, clean=5.0)
    make_run(tmp_path, "ours", errors=ours_err, clean=5.0, lr=0.1)
    rep = R.report([tmp_path], baseline="base")
    ours = board_row(rep, "ours")
    assert ours["norm. mCE"] == pytest.approx((14 * 20 / 20 + 40 / 80) / 15 * 100)  # 96.67
    assert ours["rel. mCE"] == pytest.approx((14 * 15 / 15 + 35 / 75) / 15 * 100)  # 96.44
    # The ratio of totals would be 88.89 and 85.96: told apart.
    assert abs(ours["norm. mCE"] - 100 * (14 * 20 + 40) / (14 * 20 + 80)) > 7
    assert shown(rep, "leaderboard", "ours", "norm. mCE") == "96.67" and shown(rep, "leaderboard", "ours", "rel. mCE") == "96.44"
    assert board_row(rep, "base")["norm. mCE"] == pytest.approx(100.0)


def test_normalised_and_relative_mce_with_error_profiles_that_vary_by_corruption_and_severity(tmp_path):
    base = lambda i, s: 10.0 + 3 * i + 2 * s  # noqa: E731
    ours = lambda i, s: 8.0 + i * i / 4 + s * (1 + i % 3)  # noqa: E731
    make_run(tmp_path, "base", errors=lambda i, c, s: base(i, s), clean=4.0)
    make_run(tmp_path, "ours", errors=lambda i, c, s: ours(i, s), clean=6.0, lr=0.1)
    row = board_row(R.report([tmp_path], baseline="base"), "ours")
    assert row["norm. mCE"] == pytest.approx(hand_normalised(ours, base), rel=1e-6)
    assert row["rel. mCE"] == pytest.approx(hand_relative(ours, 6.0, base, 4.0), rel=1e-6)
    totals = 100 * sum(ours(i, s) for i in range(15) for s in range(1, 6)) / sum(base(i, s) for i in range(15) for s in range(1, 6))
    assert abs(row["norm. mCE"] - totals) > 1


def test_seeds_are_grouped_with_mean_std_and_a_paired_interval(tmp_path):
    three_seeds(tmp_path, "std", [30.0, 32.0, 34.0])
    three_seeds(tmp_path, "aug", [20.0, 21.0, 25.0], policy="augmix")
    rep = R.report([tmp_path], baseline="std-s0")
    aug = board_row(rep, "aug")
    assert aug["mCE"] == pytest.approx(22.0) and aug["mCE std"] == pytest.approx(math.sqrt(7.0)) and aug["mCE n"] == 3
    assert shown(rep, "leaderboard", "aug", "mCE") == "22.00 ± 2.65 (3)"
    assert shown(rep, "leaderboard", "std", "clean") == "6.00 ± 1.00 (3)"
    # Paired by seed: differences -10, -11, -9 -> mean -10, sd 1, half-width t(0.975, 2) * 1 / sqrt(3).
    assert aug["Δ mCE"] == pytest.approx(-10.0) and aug["Δ mCE method"] == "paired"
    assert aug["Δ mCE ci"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert shown(rep, "leaderboard", "aug", "Δ mCE") == "-10.00 ± 2.48 (paired)"
    assert shown(rep, "leaderboard", "std", "Δ mCE") == "baseline"
    assert [r for r in rep.leaderboard["run"]] == ["aug", "std"] and list(rep.leaderboard["rank"]) == [1, 2]
    assert shown(rep, "leaderboard", "aug", "seeds") == "0,1,2"
    # --no-group: one row per run.
    flat = R.report([tmp_path], group=False)
    assert list(flat.leaderboard["run"]) == ["aug-s0", "aug-s1", "aug-s2", "std-s0", "std-s1", "std-s2"]


def test_welch_interval_when_the_seeds_differ(tmp_path):
    three_seeds(tmp_path, "std", [30.0, 32.0, 34.0])
    for seed, m in zip((5, 6, 7), (20.0, 22.0, 24.0)):
        make_run(tmp_path, f"aug-s{seed}", errors=constant(m), seed=seed, policy="augmix")
    aug = board_row(R.report([tmp_path], baseline="std"), "aug")
    # Equal variances (4) and sizes (3): se = sqrt(4/3 + 4/3), Welch df = 4, t(0.975, 4) = 2.776445.
    assert aug["Δ mCE method"] == "welch" and aug["Δ mCE"] == pytest.approx(-10.0)
    assert aug["Δ mCE ci"] == pytest.approx(2.776445 * math.sqrt(8 / 3), rel=1e-6)


def test_incomplete_runs_are_marked_never_averaged_over_fewer_cells(tmp_path):
    make_run(tmp_path, "s3-only", errors=lambda i, c, s: 10.0 + i, severities=(3,))
    make_run(tmp_path, "no-fog4", errors=constant(20.0), lr=0.2)
    rows = (tmp_path / "no-fog4" / "eval" / "shapes10-generated.csv").read_text().splitlines()
    (tmp_path / "no-fog4" / "eval" / "shapes10-generated.csv").write_text(
        "\n".join(r for r in rows if not r.startswith("fog,4,")) + "\n")
    rep = R.report([tmp_path])
    assert math.isnan(board_row(rep, "s3-only")["mCE"])
    assert shown(rep, "leaderboard", "s3-only", "mCE") == "incomplete (15/75)"
    assert shown(rep, "leaderboard", "s3-only", "extra") == "incomplete (4/20)"
    assert shown(rep, "leaderboard", "no-fog4", "mCE") == "incomplete (74/75)"
    assert shown(rep, "leaderboard", "no-fog4", "status") == "incomplete"
    # The cells it has stay visible: severity 3 is the mean of 10..24; the others are missing.
    assert shown(rep, "severities", "s3-only", "s3") == "17.00" and shown(rep, "severities", "s3-only", "s4") == "-"
    assert shown(rep, "corruptions", "s3-only", "gauss") == "incomplete (1/5)"
    assert shown(rep, "corruptions", "no-fog4", "fog") == "incomplete (4/5)"
    assert shown(rep, "corruptions", "no-fog4", "snow") == "20.00"
    assert shown(rep, "severities", "no-fog4", "s4") == "incomplete (14/15)"
    assert rep.leaderboard["rank"].isna().all()  # nothing complete, nothing ranked


def test_a_group_with_one_incomplete_seed_says_so(tmp_path):
    three_seeds(tmp_path, "g", [30.0, 32.0, 34.0])
    make_run(tmp_path, "g-s3", errors=constant(50.0), seed=3, severities=(1, 2))
    rep = R.report([tmp_path])
    row = board_row(rep, "g")
    assert row["mCE"] == pytest.approx(32.0) and row["mCE n"] == 3  # the incomplete seed is not averaged in
    assert shown(rep, "leaderboard", "g", "mCE") == "32.00 ± 2.00 (3 of 4)"
    assert shown(rep, "leaderboard", "g", "status") == "incomplete"


def test_unevaluated_and_killed_runs_are_listed(tmp_path):
    make_run(tmp_path, "done", errors=constant(20.0))
    make_run(tmp_path, "fresh", errors=None, clean=7.5, lr=0.3)
    # A training run killed at epoch 3 of 10: no run.json, but evaluated from its last checkpoint.
    make_run(tmp_path, "killed", errors=constant(25.0), clean=9.0, run_json=False, epochs=10, epochs_done=3, lr=0.4)
    make_run(tmp_path, "killed-unevaluated", errors=None, clean=11.0, run_json=False, epochs=10, epochs_done=2, lr=0.5)
    rep = R.report([tmp_path])
    assert shown(rep, "leaderboard", "fresh", "status") == "not evaluated"
    assert shown(rep, "leaderboard", "fresh", "clean") == "7.50" and shown(rep, "leaderboard", "fresh", "mCE") == "-"
    assert shown(rep, "leaderboard", "killed", "mCE") == "25.00"
    assert shown(rep, "leaderboard", "killed", "status") == "killed: stopped at epoch 3/10"
    assert shown(rep, "leaderboard", "killed-unevaluated", "status") == "not evaluated; stopped at epoch 2/10"
    assert shown(rep, "leaderboard", "killed-unevaluated", "clean") == "11.00"  # metrics.csv's last test error
    assert list(rep.leaderboard["run"])[-2:] == ["fresh", "killed-unevaluated"]
    # Only unevaluated runs: still a report, not an error.
    only = tmp_path / "only"
    make_run(only, "fresh2", errors=None, clean=3.0)
    assert "not evaluated" in R.render(R.report([only]))


def test_different_test_sets_are_ranked_apart_with_a_warning(tmp_path):
    make_run(tmp_path, "big", errors=constant(30.0), n=1000)
    make_run(tmp_path, "small", errors=constant(10.0), n=500, lr=0.1)
    make_run(tmp_path, "official", errors=constant(20.0), source="official", frost="official", lr=0.2)
    rep = R.report([tmp_path])
    assert list(rep.leaderboard["rank"]) == [1, 1, 1]
    assert len(rep.warnings) == 1 and "different test sets" in rep.warnings[0]
    assert "n=500" in rep.warnings[0] and "official" in rep.warnings[0]
    assert shown(rep, "leaderboard", "small", "n") == "500" and shown(rep, "leaderboard", "big", "frost") == "procedural"
    assert "**Warning:** shapes10: runs were evaluated on different test sets" in R.render(rep)
    same = tmp_path / "same"
    make_run(same, "a", errors=constant(30.0))
    make_run(same, "b", errors=constant(10.0), lr=0.1)
    assert R.report([same]).warnings == [] and list(R.report([same]).leaderboard["rank"]) == [1, 2]


def test_calibration_columns_when_present(tmp_path):
    make_run(tmp_path, "cal", errors=constant(20.0), calibration=calibration)
    make_run(tmp_path, "plain", errors=constant(25.0), lr=0.1)
    rep = R.report([tmp_path])
    assert rep.calibration == ["RMS-CE", "ECE", "NLL", "Brier"]
    row = board_row(rep, "cal")
    # Means over the 75 standard cells: ECE 0.01 * 3 -> 3 %; RMS-CE 0.02 * 3 + 0.001 * 7 -> 6.7 %; NLL 0.1 * 4.
    assert row["ECE"] == pytest.approx(3.0) and row["RMS-CE"] == pytest.approx(6.7) and row["NLL"] == pytest.approx(0.4)
    assert row["RMS-CE s5"] == pytest.approx(100 * (0.1 + 0.007)) and row["RMS-CE clean"] == pytest.approx(0.0)
    assert shown(rep, "leaderboard", "cal", "RMS-CE") == "6.70" and shown(rep, "leaderboard", "plain", "ECE") == "-"
    header, _ = V.display_tables(rep)["leaderboard"]
    assert header[-4:] == ["RMS-CE", "ECE", "NLL", "status"]
    assert "nll" in rep.cells.columns and "RMS-CE" not in V.display_tables(R.report([tmp_path / "plain"]))["leaderboard"][0]


def test_filters_and_sort(tmp_path):
    make_run(tmp_path, "a", errors=constant(30.0), clean=1.0)
    make_run(tmp_path, "b", errors=constant(10.0), clean=9.0, policy="augmix", lr=0.1)
    make_run(tmp_path, "c", errors=constant(20.0), clean=5.0, dataset="fashion-mnist", lr=0.2)
    assert list(R.report([tmp_path]).leaderboard["run"]) == ["c", "b", "a"]  # datasets apart, then by mCE
    assert list(R.report([tmp_path], sort="clean").leaderboard["run"]) == ["c", "a", "b"]
    assert list(R.report([tmp_path], dataset="shapes10").leaderboard["run"]) == ["b", "a"]
    assert list(R.report([tmp_path], policy="augmix").leaderboard["run"]) == ["b"]
    make_run(tmp_path, "d", errors=constant(25.0), source="official", frost="official", lr=0.3)
    assert list(R.report([tmp_path], source="official").leaderboard["run"]) == ["d"]
    assert list(R.report([tmp_path], source="generated", dataset="shapes10").leaderboard["run"]) == ["b", "a"]
    with pytest.raises(RobenchError, match="no run folders match"):
        R.report([tmp_path], model="resnet18")
    with pytest.raises(RobenchError, match="unknown --sort 'speed'"):
        R.report([tmp_path], sort="speed")
    with pytest.raises(RobenchError, match="baseline run 'nope'"):
        R.report([tmp_path], baseline="nope")


def test_no_run_folders_is_an_error(tmp_path):
    with pytest.raises(RobenchError, match="no run folders"):
        R.report([tmp_path])
    with pytest.raises(RobenchError, match="does not exist"):
        R.report([tmp_path / "nope"])


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="--plots needs matplotlib")
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
