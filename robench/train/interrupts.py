"""What training does when it is stopped or goes wrong (which run folders it may replace is
robench.runfolder.staging).

- SIGINT (Ctrl-C) and SIGTERM (what SLURM sends before preempting a job) only raise a flag; the
  loop checkpoints at the next step boundary and exits with INTERRUPTED (75), which says "resume
  me": `robench train --resume RUN` and a re-run sweep continue from that checkpoint. A second
  Ctrl-C interrupts at once (a repeated SIGTERM does not: SLURM and torchrun may both send one).
- A non-finite loss or weight stops training before it is checkpointed, so the last checkpoint
  on disk is the last good one.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import torch

from robench.errors import RobenchError
from robench.runfolder.files import CHECKPOINT
from robench.runtime import distributed

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
