"""What training does when it is stopped or goes wrong, and which run folders it may replace.

- SIGINT (Ctrl-C) and SIGTERM (what SLURM sends before preempting a job) only raise a flag; the
  loop checkpoints at the next step boundary and exits with INTERRUPTED (75), which says "resume
  me": `robench train --resume RUN` and a re-run sweep continue from that checkpoint. A second
  Ctrl-C interrupts at once (a repeated SIGTERM does not: SLURM and torchrun may both send one).
- A non-finite loss or weight stops training before it is checkpointed, so the last checkpoint
  on disk is the last good one.
- A folder holding a run (a checkpoint, run.json or evals) is replaced only with --overwrite, and
  then only once the new run has finished its first epoch: until then the new run trains in a
  hidden staging folder beside it, which an interruption or failure simply removes. A folder
  holding nothing but the config of a start that never checkpointed does not block a re-run.
- A folder holding anything robench does not write into a run (a thesis, notes, a repository) is
  never replaced or cleared, --overwrite or not: only a robench run is recognised (by its files).
"""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path

import torch

from robench import distributed
from robench.errors import RobenchError
from robench.runfiles import CHECKPOINT, CONFIG, EVAL_DIR, METRICS, RUN_JSON

INTERRUPTED = 75  # EX_TEMPFAIL: the run was checkpointed and can be resumed


class Interrupted(RobenchError):
    """Training was stopped by SIGINT/SIGTERM; the CLI exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = INTERRUPTED):
        super().__init__(message)
        self.exit_code = exit_code


def interrupted_at_once(run_dir: Path, staged: bool) -> Interrupted:
    """A second Ctrl-C stops training at once, between checkpoints: one line saying what was kept."""
    if staged:
        kept = f"the new run is discarded and the old run in {run_dir} is kept"
    elif (run_dir / CHECKPOINT).exists():
        kept = f"{run_dir} keeps its last checkpoint; continue with: robench train --resume {run_dir}"
    else:
        kept = f"no epoch had finished, so nothing was kept in {run_dir}"
    return Interrupted(f"stopped at once by a second Ctrl-C: {kept}", exit_code=130)


class StopSignals:
    """While active, SIGINT and SIGTERM set a flag instead of killing the process.

    Under torchrun the ranks agree every `agree_every` steps (one tiny all-reduce), so they all
    stop at the same step; a single process reads its flag every step (no device sync).
    """

    def __init__(self, device: torch.device, agree_every: int = 10):
        self.signal: int | None = None
        self.device, self.agree_every = device, agree_every
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # signal handlers live on the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, sig, frame) -> None:
        if self.signal is None:
            self.signal = sig
        elif sig == self.signal == signal.SIGINT:  # Ctrl-C twice: the user insists
            raise KeyboardInterrupt
        # A repeated SIGTERM is ignored: SLURM signals every process and torchrun forwards it too.

    def requested(self, step: int, force: bool = False) -> bool:
        """Whether to stop after `step` (every rank gets the same answer)."""
        if not distributed.active():
            return self.signal is not None
        if not force and step % self.agree_every:
            return False
        flag = torch.tensor(float(self.signal is not None), device=self.device)
        return bool(distributed.all_reduce_max(flag).item())

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else "a signal"


def non_finite(loss_sum: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """1.0 when the summed loss or any weight is nan or inf, else 0.0 (on the device, not read)."""
    bad = ~torch.isfinite(loss_sum)
    for p in model.parameters():
        bad = bad | ~torch.isfinite(p.detach()).all()
    return bad.double()


def stop_if_non_finite(bad: float, where: str, last_good: str) -> None:
    """Stop (before checkpointing) when `non_finite` said so on any rank."""
    if bad:
        raise RobenchError(f"the training loss became non-finite in {where}; stopped, keeping the last good "
                           f"checkpoint ({last_good}); lower --lr or check the data")


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
