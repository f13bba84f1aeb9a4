"""robench.report.tidy: every cell of every run folder in one table, in its column order, written
whole to CSV and Parquet."""

import pandas as pd
import pytest
from runfolders import CORRUPTIONS, calibration, constant, make_run

from robench.report import leaderboard as R
from robench.report.tidy import load


def test_tidy_table_has_every_cell_and_writes_whole(tmp_path):
    make_run(tmp_path / "runs", "a", errors=lambda i, c, s: float(i + s), calibration=calibration, seed=3)
    make_run(tmp_path / "runs", "b", errors=constant(5.0), severities=(2,), lr=0.1)
    results = load([tmp_path / "runs"])
    cells = results.cells
    assert list(cells.columns[:12]) == ["run", "model", "policy", "dataset", "source", "seed", "eval_seed", "corruption",
                                        "severity", "n", "error", "frost_textures"]
    assert len(cells) == (1 + 95) + (1 + 19) and set(cells.columns[12:]) == {"nll", "brier", "ece", "rms_ce"}
    one = cells[(cells["run"] == "a") & (cells["corruption"] == "fog") & (cells["severity"] == 4)].iloc[0]
    assert one["error"] == CORRUPTIONS.index("fog") + 4 and one["seed"] == 3 and one["rms_ce"] == pytest.approx(0.08 + 0.009)
    rep = R.report([tmp_path / "runs"])
    R.write_output(rep, tmp_path / "board.csv")
    back = pd.read_csv(tmp_path / "board.csv")
    assert len(back) == len(cells) and back["error"].sum() == pytest.approx(cells["error"].sum())
    pytest.importorskip("pyarrow")
    R.write_output(rep, tmp_path / "board.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "board.parquet"), cells, check_dtype=False)
