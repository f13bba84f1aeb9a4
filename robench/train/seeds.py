"""Which runs one `robench train` command means: one run, one per seed (--seeds), or the
continuation of an existing run (--resume)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from robench.runtime import distributed
from robench.config import TrainConfig, read_yaml, resolve
from robench.errors import RobenchError
from robench.train.resume import resume_config
from robench.train.loop import train


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' or '0-2,7' -> the seeds in order, each once."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
            if last < first:
                raise ValueError
            seeds += [s for s in range(first, last + 1) if s not in seeds]
    except ValueError:
        raise RobenchError(f"bad --seeds '{text}'; give seeds like 0,1,2 or 0-4") from None
    return seeds


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
