"""robench sweep: a grid expands into runs that train and evaluate to completion; a re-run does
nothing but what is missing; --slurm writes a job array whose tasks complete the grid; --status
tells each run's state; a grid with a mistake is one line, exit 2, nothing written.

A sweep run is done only when `robench eval` itself would skip every requested cell: sweep asks
the evaluation's own plan and cell store, so cells of another eval seed, another checkpoint or
other frost photographs count as missing, as eval would recompute them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from robench.cli import app
from robench.config import EvalConfig
from robench.eval.loop import evaluate_run
from robench.sweep import load_grid, missing_cells, state
from robench.train.loop import train

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])
SET = dict(dataset="shapes10", model="small-cnn", epochs=1, batch_size=32, train_limit=32, test_limit=10, device="cpu")
EVAL = dict(corruptions="gaussian_noise", severities="1", device="cpu")


def write_grid(path: Path, **sections) -> Path:
    grid = dict(out_dir=str(path.parent / "out"), set=SET, eval=EVAL, **sections)
    path.write_text(yaml.safe_dump(grid))
    return path


def files(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and ".locks" not in p.parts}


def test_a_2x2_sweep_runs_to_completion_and_a_rerun_does_only_what_is_missing(tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", grid=dict(policy=["none", "standard"], seed=[0, 1]))
    out = tmp_path / "out"
    result = invoke("sweep", grid)
    assert result.exit_code == 0, result.output
    names = ["none-s0", "none-s1", "standard-s0", "standard-s1"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == names
    for name in names:
        assert (out / name / "run.json").exists()
        cells = (out / name / "eval" / "shapes10-generated.csv").read_text().splitlines()
        assert len(cells) == 3  # header, clean, gaussian_noise s1
    assert yaml.safe_load((out / "none-s1" / "config.yaml").read_text())["seed"] == 1
    assert "4 done, 0 running, 0 failed, 0 missing of 4 runs" in result.stdout

    before = files(out)
    again = invoke("sweep", grid)
    assert again.exit_code == 0 and "==" not in again.stdout and files(out) == before

    # a lost eval is redone, and only it; a run stopped before run.json is resumed
    (out / "none-s1" / "eval" / "shapes10-generated.csv").unlink()
    (out / "standard-s0" / "run.json").unlink()
    status = invoke("sweep", "--status", grid).stdout
    assert "none-s1      failed    trained; 2 eval cell(s) missing" in status
    assert "standard-s0  failed    epoch 1/1 (resumable)" in status and "2 done, 0 running, 2 failed" in status
    third = invoke("sweep", grid)
    assert third.exit_code == 0, third.output
    assert [line for line in third.stdout.splitlines() if line.startswith("==")] == [
        "== none-s1: evaluating", "== standard-s0: resuming"]
    assert "already finished its 1 epochs" in third.stdout and "4 done" in third.stdout


def test_status_tells_missing_running_and_failed_runs(tmp_path):
    from robench import sweep

    grid = write_grid(tmp_path / "grid.yaml", grid=dict(seed=[0, 1, 2]))
    spec = sweep.load_grid(grid)
    held = sweep.RunLock(spec, spec.runs[1])
    assert held.acquire()
    (spec.out_dir / "small-cnn-s0").mkdir()  # not a name of this grid: ignored
    (spec.out_dir / "s2").mkdir()
    (spec.out_dir / "s2" / "checkpoint.pt").write_bytes(b"x")
    (spec.out_dir / "s2" / "metrics.csv").write_text("epoch\n1\n")
    try:
        table = invoke("sweep", "--status", grid).stdout.splitlines()
    finally:
        held.release()
    assert [line.split()[:2] for line in table[1:4]] == [["s0", "missing"], ["s1", "running"], ["s2", "failed"]]
    assert table[3].endswith("epoch 1/1 (resumable)")
    assert table[-1].startswith("0 done, 1 running, 1 failed, 1 missing of 3 runs")


def test_slurm_script_is_valid_bash_and_its_array_tasks_complete_the_grid(tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", grid=dict(seed=[0, 1]), slurm={"partition": "gpu", "gres": "gpu:1"})
    result = invoke("sweep", "--slurm", grid, "--sbatch", "time=02:00:00", "--sbatch", "partition=big")
    assert result.exit_code == 0, result.output
    script = tmp_path / "out" / "grid.sbatch"
    text = script.read_text()
    for line in ["#SBATCH --array=0-1", "#SBATCH --partition=big", "#SBATCH --gres=gpu:1", "#SBATCH --time=02:00:00",
                 f"#SBATCH --output={tmp_path / 'out' / 'logs'}/%A_%a.out", "#SBATCH --requeue"]:
        assert line in text.splitlines(), line
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert not (tmp_path / "out" / "s0").exists()  # writing the script ran nothing
    for task in ("0", "1"):
        done = subprocess.run(["bash", str(script)], env={**os.environ, "SLURM_ARRAY_TASK_ID": task}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"== s{task}: training" in done.stdout
    status = invoke("sweep", "--status", grid).stdout
    assert "2 done, 0 running, 0 failed, 0 missing of 2 runs" in status


@pytest.mark.parametrize("grid, message", [
    (dict(grid=dict(lrr=[0.1])), "unknown train option(s) in 'grid': lrr"),
    (dict(grid=dict(model=["resnet19"])), "run resnet19-s0: unknown model 'resnet19'"),
    (dict(grid=dict(seed=3)), "grid 'seed' must be a non-empty list"),
    (dict(set=dict(epochs="ten")), "config key 'epochs' must be int"),
    (dict(eval=dict(severitie="1")), "unknown eval option(s): severitie"),
    (dict(eval=dict(severities="9")), "bad --severities"),
    (dict(gird=dict(seed=[0])), "unknown key(s) gird"),
    (dict(recipes=["nope.yaml"]), "config file"),
])
def test_a_grid_with_a_mistake_is_one_line_and_writes_nothing(tmp_path, grid, message):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"out_dir": str(tmp_path / "out"), "set": SET, **grid}))
    result = invoke("sweep", path)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_the_shipped_table1_grid_expands_to_8_recipes_x_3_seeds():
    from robench import sweep

    spec = sweep.load_grid(Path(__file__).resolve().parents[1] / "recipes" / "sweeps" / "augmix-paper-table1.yaml")
    names = [run.name for run in spec.runs]
    assert len(names) == len(set(names)) == 24
    assert names[:3] == ["wrn40-2-standard-s0", "wrn40-2-standard-s1", "wrn40-2-standard-s2"]
    augmix = next(run.cfg for run in spec.runs if run.name == "wrn40-2-augmix-s2")
    assert (augmix.jsd, augmix.seed, augmix.epochs, augmix.checkpoint_every) == (True, 2, 100, 100)
    assert spec.eval == {"corruptions": "all", "severities": "1-5"} and spec.slurm["gres"] == "gpu:1"


def test_per_gpu_without_gpus_is_one_line(tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", grid=dict(seed=[0]))
    result = invoke("sweep", grid, "--per-gpu")
    assert result.exit_code == 2 and "--per-gpu needs CUDA GPUs" in result.stderr
    result = invoke("sweep", grid, "--task", "5")
    assert result.exit_code == 2 and "--task 5 is out of range" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


# --- done means eval would skip every cell: a real train + eval, then grids asking for other cells ---

QUIET = lambda *_: None  # noqa: E731
DONE_EVAL = dict(corruptions="gaussian_noise,frost", severities="1,3", source="generated", device="cpu",
                 frost="procedural")


def grid_with(tmp_path, **changes):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(dict(out_dir=str(tmp_path / "out"), set=SET, eval={**DONE_EVAL, "seed": 0, **changes},
                                        grid=dict(seed=[0]))))
    return load_grid(path)


@pytest.fixture
def evaluated(tmp_path):
    """The grid's one run trained and evaluated with eval seed 0 and procedural frost."""
    grid = grid_with(tmp_path)
    run = grid.runs[0]
    train(run.cfg, echo=QUIET)
    evaluate_run(EvalConfig(str(grid.out_dir / run.name), seed=0, **DONE_EVAL), echo=QUIET)
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
