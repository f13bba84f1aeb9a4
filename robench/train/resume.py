"""Continuing a training run exactly where its last checkpoint left it.

Besides the weights, a checkpoint holds the optimizer and the schedule, the metrics rows so far,
where in the epoch it was taken (`position`: batches done, 0 at an epoch's end) with the epoch's
partial sums, and every random state: torch's global generator (and CUDA's) and each rank's
augmentation generator (the one the policy and the mixer draw from). The loader needs no state of
its own: its order is a function of (seed, epoch), so the epoch and the position place it.
Restoring all of it makes a resumed run end with the weights of a run never stopped (bit for bit
on the CPU; CUDA kernels are not all deterministic).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from robench.config import TrainConfig, resolve
from robench.errors import RobenchError
from robench.runfolder.checkpoints import load_checkpoint
from robench.runfolder.files import CHECKPOINT, CONFIG, read_config

# Options a resumed run may change: where it runs and how often it checkpoints, nothing it computes.
MAY_CHANGE = ("device", "data_dir", "checkpoint_every", "compile")
# What a checkpoint needs beyond the weights to be resumed.
RESUME_KEYS = ("optimizer", "scheduler", "rows", "position", "partial", "rng", "world_size")


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """This process's random states: torch's global ones and the augmentation generator's."""
    state = {"torch": torch.get_rng_state(), "augment": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_config(run_dir: Path, given: dict[str, Any]) -> TrainConfig:
    """The config of the run in `run_dir`, for `robench train --resume`. `given` holds the options
    the user also passed: each must match the run's (bar MAY_CHANGE), else a one-line error."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RobenchError(f"cannot resume {run_dir}: there is no run there (no {CONFIG}); give a folder that "
                           f"robench train wrote")
    if not (run_dir / CHECKPOINT).is_file():
        raise RobenchError(f"cannot resume {run_dir}: it has no checkpoint yet; start it again with robench train "
                           f"--name {run_dir.name} (or --overwrite)")
    stored = read_config(run_dir)
    stored["name"], stored["out_dir"] = run_dir.name, str(run_dir.parent)
    defaults = dataclasses.asdict(TrainConfig())
    for key, value in given.items():
        if value is None or key in MAY_CHANGE or key == "out_dir":
            continue
        old = stored.get(key, defaults.get(key))
        if isinstance(value, dict) and isinstance(old, dict):
            differs = any(old.get(k) != v for k, v in value.items())
        else:
            differs = value != old
        if differs:
            flag = "--" + key.replace("_", "-")
            raise RobenchError(f"cannot resume {run_dir} with {flag} {value!r}: the run was started with {old!r}; "
                               f"a resumed run keeps its config (start a new run with --name to change it)")
    stored.update({k: given[k] for k in MAY_CHANGE if given.get(k) is not None})
    return resolve(TrainConfig, None, stored)


def load_resumable(run_dir: Path, world_size: int) -> dict:
    """The run's last checkpoint, checked to hold everything a resume needs."""
    checkpoint = load_checkpoint(Path(run_dir) / CHECKPOINT)
    missing = [k for k in RESUME_KEYS if k not in checkpoint]
    if missing:
        raise RobenchError(f"cannot resume {run_dir}: its checkpoint lacks {', '.join(missing)} (written by an older "
                           f"robench); start it again with --overwrite")
    if checkpoint["world_size"] != world_size:
        raise RobenchError(f"cannot resume {run_dir} on {world_size} process(es): it was trained on "
                           f"{checkpoint['world_size']}; resume it with torchrun --nproc-per-node "
                           f"{checkpoint['world_size']} (or without torchrun for 1)")
    return checkpoint
