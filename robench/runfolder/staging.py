"""Which run folders a new run may replace, and how it replaces one without losing it.

A folder holding a run (a checkpoint, run.json or evals) is replaced only with --overwrite, and
then only once the new run has finished its first epoch: until then the new run trains in a
hidden staging folder beside it, which an interruption or failure simply removes. A folder
holding nothing but the config of a start that never checkpointed does not block a re-run.
Importing this module imports no torch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from robench.errors import RobenchError
from robench.runfolder.files import CHECKPOINT, CONFIG


def holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds anything a user would lose: everything but config.yaml and the hidden
    temporary files of a start that never wrote a checkpoint counts."""
    if not run_dir.is_dir():
        return run_dir.exists()
    return any(p.name != CONFIG and not p.name.startswith(".") for p in run_dir.iterdir())


def staging_dir(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.overwrite")


def check_start(run_dir: Path, overwrite: bool) -> None:
    """A new run may start in `run_dir` (checked before anything is loaded or written)."""
    if holds_a_run(run_dir) and not overwrite:
        raise RobenchError(f"{run_dir} already holds a run; pass --resume {run_dir} to continue it, --name for "
                           f"a new one or --overwrite to replace it")


def start_folder(run_dir: Path, overwrite: bool) -> Path:
    """Where a new run writes until its first epoch is done: `run_dir` itself, or its staging folder
    when it replaces a run (--overwrite). Leftovers of a start that never checkpointed are cleared."""
    check_start(run_dir, overwrite)
    if holds_a_run(run_dir):
        folder = staging_dir(run_dir)
    else:
        folder = run_dir
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def promote(folder: Path, run_dir: Path) -> Path:
    """The new run's first epoch is done: it takes the place of the run it replaces (if any)."""
    if folder == run_dir:
        return run_dir
    aside = run_dir.with_name(f".{run_dir.name}.replaced")
    if aside.exists():
        shutil.rmtree(aside)
    run_dir.rename(aside)
    folder.rename(run_dir)
    shutil.rmtree(aside)
    return run_dir


def abandon(folder: Path, run_dir: Path) -> None:
    """A new run that stops before anything worth keeping: remove what it wrote. A staging folder goes
    whatever it holds (the old run stays); the run's own folder goes only when it holds no checkpoint."""
    if folder != run_dir or not (folder / CHECKPOINT).exists():
        shutil.rmtree(folder, ignore_errors=True)
