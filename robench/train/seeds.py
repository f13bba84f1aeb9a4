"""Which runs one `robench train` command means: one run, one per seed (--seeds), or the
continuation of an existing run (--resume)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from robench.config import TrainConfig, read_yaml, resolve
from robench.errors import RobenchError
from robench.runtime import distributed
from robench.train.loop import train
from robench.train.resume import resume_config

# One run per seed: a range is checked against this before anything is built (0-99999999 would
# make a config per seed, 1 million took 16.7 s and 2.4 GB, before the first line was printed).
MAX_SEEDS = 1000


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' or '0-2,7' -> the seeds in order, each once (at most MAX_SEEDS)."""
    ranges = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            ranges.append((int(lo), int(hi) if hi else int(lo)))
    except ValueError:
        ranges = [(1, 0)]
    if any(last < first for first, last in ranges):
        raise RobenchError(f"bad --seeds '{text}'; give seeds like 0,1,2 or 0-4")
    if sum(last - first + 1 for first, last in ranges) > MAX_SEEDS:  # counted before any list is built
        raise RobenchError(f"--seeds '{text}' asks for more than {MAX_SEEDS} runs; give at most {MAX_SEEDS} seeds "
                           f"per command (e.g. 0-{MAX_SEEDS - 1})")
    return list(dict.fromkeys(s for first, last in ranges for s in range(first, last + 1)))


def seed_config(cfg: TrainConfig, seed: int) -> TrainConfig:
    """`cfg` for one seed of --seeds: its name gets '-s<seed>' (the default name already ends so)."""
    return dataclasses.replace(cfg, seed=seed, policy_params=dict(cfg.policy_params), mix_params=dict(cfg.mix_params),
                               name=f"{cfg.name}-s{seed}" if cfg.name else None)


def train_runs(yaml_path: str | Path | None, flags: dict[str, Any], resume: Path | None = None,
               seeds: str | None = None, overwrite: bool = False, echo: Callable[[str], None] = print) -> list[Path]:
    """Train what the command asks for; returns the run folders."""
    cfg = resolve(TrainConfig, yaml_path, flags)  # checks keys and types even when resuming
    if resume is not None:
        if seeds is not None or overwrite:
            raise RobenchError("--resume continues one run as it was started; it cannot be combined with --seeds "
                               "or --overwrite")
        given = {str(k).replace("-", "_"): v for k, v in (read_yaml(yaml_path) if yaml_path else {}).items()}
        given.update({k: v for k, v in flags.items() if v is not None})
        configs, resuming = [resume_config(resume, given)], True
    elif seeds is not None:
        configs, resuming = [seed_config(cfg, s) for s in parse_seeds(seeds)], False
    else:
        configs, resuming = [cfg], False
    done = []
    for one in configs:
        done.append(train(one, overwrite=overwrite, echo=echo, resume=resuming))
        if distributed.is_main():
            echo(f"done: {done[-1]}  (next: robench eval {done[-1]})")
    return done
