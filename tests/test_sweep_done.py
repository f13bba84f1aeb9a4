"""A sweep run is done only when it has every requested eval cell for the grid's eval seed: cells
computed with another seed of the generated corruptions do not count."""

import pytest
import yaml
from runfolders import constant, make_run

from robench.sweep import load_grid, missing_cells, state

SET = dict(dataset="shapes10", model="small-cnn", epochs=1, batch_size=32, train_limit=32, test_limit=10, device="cpu")


def grid_with_eval_seed(tmp_path, seed: int):
    path = tmp_path / f"grid-{seed}.yaml"
    evaluation = dict(corruptions="gaussian_noise,fog", severities="1,3", source="generated", device="cpu", seed=seed)
    path.write_text(yaml.safe_dump(dict(out_dir=str(tmp_path / "out"), set=SET, eval=evaluation,
                                        grid=dict(seed=[0]))))
    return load_grid(path)


@pytest.fixture
def evaluated_with_seed_0(tmp_path):
    """Run s0 trained, with every cell evaluated with eval seed 0 (runfolders writes seed 0 rows)."""
    make_run(tmp_path / "out", "s0", errors=constant(20.0), dataset="shapes10", source="generated")
    return tmp_path


def test_cells_of_the_grids_eval_seed_make_the_run_done(evaluated_with_seed_0):
    grid = grid_with_eval_seed(evaluated_with_seed_0, 0)
    assert [r.name for r in grid.runs] == ["s0"]
    assert missing_cells(grid, grid.runs[0]) == 0
    assert state(grid, grid.runs[0]) == ("done", "")


def test_cells_of_another_eval_seed_are_missing(evaluated_with_seed_0):
    grid = grid_with_eval_seed(evaluated_with_seed_0, 1)
    assert missing_cells(grid, grid.runs[0]) == 5  # clean + 2 corruptions x 2 severities
    assert state(grid, grid.runs[0]) == ("failed", "trained; 5 eval cell(s) missing")
