"""`robench sweep GRID.yaml`: a grid of runs (recipes x any config keys, seeds included), trained
and evaluated locally one after another, or as a SLURM job array.

A grid file:

    out_dir: results/table1            # where the runs go [default: results/<grid file name>]
    recipes: [../a.yaml, ../b.yaml]    # optional: config files (relative to this file), one axis
    grid:                              # any train option -> the values to try (another axis each)
      model: [wrn-40-2, resnet18]
      seed: [0, 1, 2]
    set: {epochs: 100}                 # train options every run shares (over the recipe's)
    eval: {corruptions: all, severities: 1-5}   # robench eval options; `eval: false` skips eval
    slurm: {partition: gpu, time: "24:00:00", gres: "gpu:1"}   # #SBATCH options for --slurm

A run is named after its recipe's `name` (or file name), the grid values that vary (bare for
model, policy, mix, dataset and optimizer, key+value otherwise) and its seed: wrn40-2-augmix-s0,
resnet18-lr0.05-s1. Every run is resolved and checked (names, keys, types) before anything runs. A run is done when it
has run.json and every requested eval cell; done runs are skipped and unfinished ones resumed from
their checkpoint, so re-running a sweep completes it. A worker holds a lock file per run while it
works on it, so several workers (--per-gpu, SLURM tasks, two terminals) never share a run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from robench.config import EvalConfig, TrainConfig, field_names, read_yaml, resolve, to_yaml
from robench.errors import RobenchError
from robench.runfolder.files import CHECKPOINT, METRICS, RUN_JSON, safe_name
from robench.runfolder.staging import holds_a_run
from robench.train.interrupts import INTERRUPTED, Interrupted

GRID_KEYS = ("out_dir", "recipes", "grid", "set", "eval", "slurm")
# Values of these keys name a run as they are (resnet18); other keys as key+value (lr0.1).
BARE = ("model", "policy", "mix", "dataset", "optimizer")


@dataclass
class SweepRun:
    name: str
    cfg: TrainConfig


@dataclass
class Grid:
    path: Path
    out_dir: Path
    runs: list[SweepRun]
    eval: dict[str, Any] | None  # EvalConfig options, None to skip evaluation
    slurm: dict[str, Any]


# ----------------------------------------------------------------------------- reading a grid


def _mapping(data: dict, key: str, path: Path) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise RobenchError(f"{path}: '{key}' must be a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in value.items()}


def load_grid(path: str | Path) -> Grid:
    """Expand and check a grid file (one-line errors for every mistake, before anything runs)."""
    from robench.train.loop import resolve_run

    path = Path(path)
    data = read_yaml(path)
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise RobenchError(f"{path}: unknown key(s) {', '.join(unknown)}; a grid file has: {', '.join(GRID_KEYS)}")
    train_keys = field_names(TrainConfig) - {"name", "out_dir"}
    fixed, axes = _mapping(data, "set", path), _mapping(data, "grid", path)
    for section, keys in (("set", fixed), ("grid", axes)):
        bad = sorted(set(keys) - train_keys)
        if bad:
            raise RobenchError(f"{path}: unknown train option(s) in '{section}': {', '.join(bad)}; valid: "
                               f"{', '.join(sorted(train_keys))}")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise RobenchError(f"{path}: grid '{key}' must be a non-empty list of values, e.g. {key}: [a, b]")
    recipes = data.get("recipes") or [None]
    if not isinstance(recipes, list):
        raise RobenchError(f"{path}: 'recipes' must be a list of config files")
    recipes = [None if r is None else path.parent / r for r in recipes]  # relative to the grid file
    out_dir = Path(data.get("out_dir") or Path("results") / safe_name(path.stem))

    evaluation = data.get("eval", {})
    if evaluation is not False:
        evaluation = _mapping(data, "eval", path)
        bad = sorted(set(evaluation) - (field_names(EvalConfig) - {"run"}))
        if bad:
            raise RobenchError(f"{path}: unknown eval option(s): {', '.join(bad)}; valid: "
                               f"{', '.join(sorted(field_names(EvalConfig) - {'run'}))}")
        resolve(EvalConfig, None, {**evaluation, "run": "-"})
        from robench.eval.subjects import MODEL_OPTIONS

        # A sweep evaluates its own run folders, which bring their weights and keep results in eval/:
        # these options would be refused at every run's evaluation, after its training.
        moot = sorted(k for k in evaluation if k in (*MODEL_OPTIONS, "name", "ensemble", "out_dir") and evaluation[k])
        if moot:
            raise RobenchError(f"{path}: eval option(s) {', '.join(moot)} do not apply to the sweep's run folders; "
                               f"remove them from 'eval'")
    slurm = data.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise RobenchError(f"{path}: 'slurm' must be a mapping of #SBATCH option: value")

    runs, names = [], {}
    for recipe, point in itertools.product(recipes, itertools.product(*axes.values())):
        values = dict(zip(axes, point))
        try:
            cfg = resolve(TrainConfig, recipe, {**fixed, **values})
        except RobenchError as e:
            raise RobenchError(f"{path}: {e}") from None
        parts = [cfg.name or recipe.stem] if recipe is not None else []  # the recipe's run name
        parts += [str(v) if k in BARE else f"{k}{v}" for k, v in values.items() if k != "seed"]
        name = safe_name("-".join(parts + [f"s{cfg.seed}"]))
        cfg.name, cfg.out_dir = name, str(out_dir)
        try:
            resolve_run(cfg)
        except RobenchError as e:
            raise RobenchError(f"{path}: run {name}: {e}") from None
        if name in names:
            raise RobenchError(f"{path}: two runs would be named {name}; give the recipes distinct file names")
        names[name] = True
        runs.append(SweepRun(name, cfg))
    return Grid(path, out_dir, runs, evaluation if evaluation is not False else None, slurm)


# ----------------------------------------------------------------------------- the state of a run


def _lock_path(grid: Grid, run: SweepRun) -> Path:
    return grid.out_dir / ".locks" / f"{run.name}.lock"


class RunLock:
    """An exclusive, non-blocking lock on one run of the grid (released when the process dies)."""

    def __init__(self, grid: Grid, run: SweepRun):
        self.path, self.fd = _lock_path(grid, run), None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def missing_cells(grid: Grid, run: SweepRun) -> int | None:
    """How many requested eval cells the run lacks (None before it has finished training), by the
    rule `robench eval` itself skips cells by (the same plan and cell store: same checkpoint,
    dataset, source, seed, images and frost photographs)."""
    from robench.eval.loop import plan

    run_dir = grid.out_dir / run.name
    if not (run_dir / RUN_JSON).exists():
        return None
    if grid.eval is None:
        return 0
    cfg = resolve(EvalConfig, None, {**grid.eval, "run": str(run_dir)})
    planned = plan(cfg, echo=lambda _: None)
    return len(planned.store().todo(planned.cells, planned.frost))


def state(grid: Grid, run: SweepRun) -> tuple[str, str]:
    """(done | running | failed | missing, a detail)."""
    run_dir = grid.out_dir / run.name
    lock = RunLock(grid, run)
    if lock.path.exists():
        if not lock.acquire():
            return "running", _progress(run_dir, run)
        lock.release()
    if not holds_a_run(run_dir):
        return "missing", ""
    lacking = missing_cells(grid, run)
    if lacking == 0:
        return "done", ""
    if lacking is not None:
        return "failed", f"trained; {lacking} eval cell(s) missing"
    return "failed", _progress(run_dir, run) + (" (resumable)" if (run_dir / CHECKPOINT).exists() else "")


def _progress(run_dir: Path, run: SweepRun) -> str:
    rows = (run_dir / METRICS).read_text().count("\n") - 1 if (run_dir / METRICS).exists() else 0
    return f"epoch {max(rows, 0)}/{run.cfg.epochs}"


def status_table(grid: Grid) -> str:
    states = [(run.name, *state(grid, run)) for run in grid.runs]
    width = max(len(name) for name, _, _ in states)
    lines = [f"{'run':<{width}}  {'state':<8}  detail"]
    lines += [f"{name:<{width}}  {what:<8}  {detail}".rstrip() for name, what, detail in states]
    counts = {what: sum(s == what for _, s, _ in states) for what in ("done", "running", "failed", "missing")}
    lines.append(", ".join(f"{n} {what}" for what, n in counts.items()) + f" of {len(states)} runs in {grid.out_dir}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- doing a run


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def run_one(grid: Grid, run: SweepRun, echo: Callable[[str], None]) -> str:
    """Train (or resume) and evaluate one run unless done or locked by another worker."""
    from robench.eval.loop import evaluate_run
    from robench.train.loop import train
    from robench.train.resume import resume_config

    lock = RunLock(grid, run)
    if not lock.acquire():
        return "running"
    try:
        run_dir = grid.out_dir / run.name
        if not (run_dir / RUN_JSON).exists():
            resume = (run_dir / CHECKPOINT).exists()
            echo(f"== {run.name}: {'resuming' if resume else 'training'}")
            if _gpus() > 1:  # all local GPUs through torchrun
                _torchrun_train(grid, run, resume, _gpus())
            else:
                cfg = dataclasses.replace(run.cfg, policy_params=dict(run.cfg.policy_params),
                                          mix_params=dict(run.cfg.mix_params))
                if resume:  # the grid must still describe the run it started
                    cfg = resume_config(run_dir, dataclasses.asdict(cfg))
                train(cfg, echo=echo, resume=resume)
        if grid.eval is not None and missing_cells(grid, run):
            echo(f"== {run.name}: evaluating")
            evaluate_run(resolve(EvalConfig, None, {**grid.eval, "run": str(run_dir)}), echo=echo)
        return "done"
    finally:
        lock.release()


def _torchrun_train(grid: Grid, run: SweepRun, resume: bool, nproc: int) -> None:
    config = grid.out_dir / ".sweep" / f"{run.name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(to_yaml(run.cfg))
    what = ["--resume", str(grid.out_dir / run.name)] if resume else ["--config", str(config)]
    child = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc-per-node={nproc}", "-m", "robench", "train", *what])
    # torchrun reports any stopped worker as its own failure (exit 1), so this process notes the
    # signals it passes on (SLURM's SIGTERM, Ctrl-C) to tell an interruption from a failure.
    received = []

    def forward(sig, frame):
        received.append(sig)
        child.send_signal(sig)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == INTERRUPTED or received:
        raise Interrupted(f"{run.name} was interrupted; re-run the sweep to resume it")
    if code:
        raise RobenchError(f"training {run.name} under torchrun exited with code {code}")


def run_local(grid: Grid, echo: Callable[[str], None], task: int | None = None) -> int:
    """Every unfinished run (or only run `task`), one after another; returns the exit code (0 when
    every run is done, 1 when some failed; an interruption stops the sweep with 75)."""
    runs = grid.runs
    if task is not None:
        if not 0 <= task < len(runs):
            raise RobenchError(f"--task {task} is out of range; {grid.path} has runs 0-{len(runs) - 1}")
        runs = [runs[task]]
    failed = []
    for run in runs:
        if state(grid, run)[0] == "done":
            continue
        try:
            if run_one(grid, run, echo) == "running":
                echo(f"== {run.name}: another worker holds it; skipped")
        except Interrupted:
            raise
        except Exception as e:  # one broken run must not stop the grid; its line says why
            first = str(e).splitlines()[0] if str(e) else ""
            echo(f"== {run.name}: failed: {type(e).__name__ + ': ' if not isinstance(e, RobenchError) else ''}{first}")
            failed.append(run.name)
    if failed:
        echo(f"{len(failed)} run(s) failed: {', '.join(failed)}; see robench sweep --status {grid.path}")
        return 1
    return 0


def run_per_gpu(grid: Grid, echo: Callable[[str], None]) -> int:
    """One worker per local GPU, each a `robench sweep` that sees only its GPU; the run locks share
    the grid out among them."""
    count = _gpus()
    if count == 0:
        raise RobenchError("--per-gpu needs CUDA GPUs and none is visible; drop --per-gpu to run on the CPU")
    workers = [subprocess.Popen([sys.executable, "-m", "robench", "sweep", str(grid.path)],
                                env={**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}) for gpu in range(count)]
    echo(f"{count} workers, one per GPU")
    codes = [w.wait() for w in workers]
    return INTERRUPTED if INTERRUPTED in codes else max(codes)


# ----------------------------------------------------------------------------- SLURM


def slurm_script(grid: Grid, options: dict[str, Any]) -> str:
    """A job-array script: one task per run, each calling `robench sweep GRID --task $SLURM_ARRAY_TASK_ID`
    (the same skip-and-resume logic as a local sweep). On SIGTERM (preemption, time limit) robench
    checkpoints and exits 75, and the task requeues itself."""
    logs = grid.out_dir.resolve() / "logs"
    sbatch = {"job-name": safe_name(grid.path.stem), "array": f"0-{len(grid.runs) - 1}",
              "output": f"{logs}/%A_%a.out", "open-mode": "append", "requeue": None, "signal": "B:TERM@120",
              **{str(k).replace("_", "-"): v for k, v in {**grid.slurm, **options}.items()}}
    lines = ["#!/bin/bash",
             f"# robench sweep --slurm {grid.path}: {len(grid.runs)} runs, one array task each. Submit with: "
             f"sbatch {grid.out_dir / (grid.path.stem + '.sbatch')}"]
    for key, value in sbatch.items():
        if not all(c.isalnum() or c == "-" for c in key):
            raise RobenchError(f"bad #SBATCH option name '{key}'; use names like partition, time, gres")
        if not (value is None or value is True):
            _one_line(str(value), f"#SBATCH option {key}")
        lines.append(f"#SBATCH --{key}" + ("" if value is None or value is True else f"={value}"))
    _one_line(str(grid.path), "the grid file's path"), _one_line(str(grid.out_dir), "out_dir")  # in the comment line
    python, grid_path = shlex.quote(sys.executable), shlex.quote(str(grid.path.resolve()))
    lines += [
        "set -u",
        f"mkdir -p {shlex.quote(str(logs))}",
        f"cd {shlex.quote(str(Path.cwd()))}",
        f"PYTHON=${{ROBENCH_PYTHON:-{python}}}",
        "# robench runs in the background so that this shell can pass SLURM's SIGTERM on to it.",
        f'"$PYTHON" -m robench sweep {grid_path} --task "$SLURM_ARRAY_TASK_ID" &',
        "pid=$! signalled=",
        "trap 'signalled=1; kill -TERM $pid 2>/dev/null' TERM",
        "wait $pid; rc=$?",
        'if [ -n "$signalled" ]; then wait $pid; rc=$?; fi  # the trap woke the first wait; this one gets robench\'s code',
        f"if [ $rc -eq {INTERRUPTED} ] && [ -n \"${{SLURM_ARRAY_JOB_ID:-}}\" ]; then",
        '    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"  # resumes from the checkpoint',
        "fi",
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


def _one_line(text: str, what: str) -> None:
    """A value written into the script must stay on its line: after a newline (or another control
    character) the rest would be a bare shell command that the job runs."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise RobenchError(f"{what} {text!r} holds a newline or control character, which would become a shell "
                           f"line of the .sbatch script; remove it")


def write_slurm(grid: Grid, options: dict[str, Any]) -> Path:
    from robench.runfolder.files import atomic_write_text

    path = grid.out_dir / f"{grid.path.stem}.sbatch"
    text = slurm_script(grid, options)
    (grid.out_dir / "logs").mkdir(parents=True, exist_ok=True)  # SLURM opens the logs before the script runs
    atomic_write_text(path, text)
    return path


def parse_sbatch(items: list[str] | None) -> dict[str, Any]:
    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key.strip():
            raise RobenchError(f"--sbatch expects KEY=VALUE (e.g. --sbatch partition=gpu), got '{item}'")
        options[key.strip()] = yaml.safe_load(value) if sep else None
    return options
