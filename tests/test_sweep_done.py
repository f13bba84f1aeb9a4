"""A sweep run is done only when `robench eval` itself would skip every requested cell: sweep asks
the evaluation's own plan and cell store, so cells of another eval seed, another checkpoint or
other frost photographs count as missing, as eval would recompute them."""

import pytest
import torch
import yaml

from robench.config import EvalConfig, TrainConfig
from robench.eval.loop import evaluate_run
from robench.sweep import load_grid, missing_cells, state
from robench.train.loop import train

QUIET = lambda *_: None  # noqa: E731
SET = dict(dataset="shapes10", model="small-cnn", epochs=1, batch_size=32, train_limit=32, test_limit=10, device="cpu")
EVAL = dict(corruptions="gaussian_noise,frost", severities="1,3", source="generated", device="cpu", frost="procedural")


def grid_with(tmp_path, **changes):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(dict(out_dir=str(tmp_path / "out"), set=SET, eval={**EVAL, "seed": 0, **changes},
                                        grid=dict(seed=[0]))))
    return load_grid(path)


@pytest.fixture
def evaluated(tmp_path):
    """The grid's one run trained and evaluated with eval seed 0 and procedural frost."""
    grid = grid_with(tmp_path)
    run = grid.runs[0]
    train(run.cfg, echo=QUIET)
    evaluate_run(EvalConfig(str(grid.out_dir / run.name), seed=0, **EVAL), echo=QUIET)
    return tmp_path


def test_a_run_evaluated_as_the_grid_asks_is_done(evaluated):
    grid = grid_with(evaluated)
    assert missing_cells(grid, grid.runs[0]) == 0
    assert state(grid, grid.runs[0]) == ("done", "")


def test_cells_of_another_eval_seed_are_missing(evaluated):
    grid = grid_with(evaluated, seed=1)
    assert missing_cells(grid, grid.runs[0]) == 5  # clean + 2 corruptions x 2 severities
    assert state(grid, grid.runs[0]) == ("failed", "trained; 5 eval cell(s) missing")


def test_frost_cells_of_other_photographs_are_missing(evaluated, monkeypatch):
    # The grid now asks for the official photographs (made available here by a stand-in resolver):
    # the frost cells computed with the procedural textures do not count, the others do.
    monkeypatch.setattr("robench.corruptions.frost_textures.resolve_frost", lambda choice: "official")
    grid = grid_with(evaluated, frost="official")
    assert missing_cells(grid, grid.runs[0]) == 2  # frost s1 and s3


def test_cells_of_a_retrained_checkpoint_are_missing(evaluated):
    grid = grid_with(evaluated)
    checkpoint = grid.out_dir / grid.runs[0].name / "checkpoint.pt"
    state_ = torch.load(checkpoint, weights_only=True)
    next(iter(state_["state_dict"].values())).add_(1.0)  # another model at the same path
    torch.save(state_, checkpoint)
    assert missing_cells(grid, grid.runs[0]) == 5
