"""Which run folders a new run may replace, and how it replaces one without losing it.

A folder holding a run (a checkpoint, run.json or evals) is replaced only with --overwrite, and
then only once the new run has finished its first epoch: until then the new run trains in a
hidden staging folder beside it, which an interruption or failure simply removes. A folder
holding nothing but the config of a start that never checkpointed does not block a re-run.
A folder holding anything robench does not write into a run (a thesis, notes, a repository) is
never replaced or cleared, --overwrite or not: only a robench run is recognised (by its files).
Importing this module imports no torch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from robench.errors import RobenchError
from robench.runfolder.files import CHECKPOINT, CONFIG, EVAL_DIR, METRICS, RUN_JSON

RUN_FILES = (CONFIG, CHECKPOINT, METRICS, RUN_JSON, EVAL_DIR)  # what robench writes into a run folder
EVAL_SUFFIXES = (".csv", ".json", ".npz")  # what eval writes into eval/


def holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds anything a user would lose: everything but config.yaml and the hidden
    temporary files of a start that never wrote a checkpoint counts."""
    if not run_dir.is_dir():
        return run_dir.exists()
    return any(p.name != CONFIG and not _robench_temporary(p.name) for p in run_dir.iterdir())


def _robench_temporary(name: str, targets=RUN_FILES) -> bool:
    """The hidden temporary file (".<target>.<random>") of an atomic write that was killed."""
    return name.startswith(".") and any(f"{t}." in name for t in targets)


def foreign_files(run_dir: Path) -> list[str]:
    """What in `run_dir` robench did not write there: anything but its run files, their temporary
    files and eval/'s CSV, JSON and predictions. Empty for a robench run, which alone may be replaced."""
    if not run_dir.is_dir():
        return []
    foreign = []
    for p in sorted(run_dir.iterdir()):
        if _robench_temporary(p.name):
            continue
        if p.name not in RUN_FILES or (p.name == EVAL_DIR) != p.is_dir():
            foreign.append(p.name)
        elif p.name == EVAL_DIR:
            foreign += [f"{EVAL_DIR}/{q.name}" for q in sorted(p.iterdir()) if not q.is_file()
                        or not (q.suffix in EVAL_SUFFIXES or _robench_temporary(q.name, EVAL_SUFFIXES))]
    return foreign


def staging_dir(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.overwrite")


def check_start(run_dir: Path, overwrite: bool) -> None:
    """A new run may start in `run_dir` (checked before anything is loaded or written). --overwrite
    replaces only a robench run: a folder with files robench did not write is a user's, and kept."""
    if not holds_a_run(run_dir):
        return
    if not run_dir.is_dir():
        raise RobenchError(f"{run_dir} is a file, not a run folder; robench never replaces it, even with "
                           f"--overwrite: choose another --name or --out-dir")
    foreign = foreign_files(run_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise RobenchError(f"{run_dir} is not a robench run (it holds {shown}); robench never replaces or clears "
                           f"it, even with --overwrite: choose another --name or --out-dir")
    if not overwrite:
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
    check_start(run_dir, overwrite=True)  # files a user put there during the first epoch are kept too
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
