"""The files of a run folder and how they are written: names, atomic writes, the eval-CSV schema.

    results/<run>/config.yaml     the fully resolved TrainConfig (repeat a run with --config)
    results/<run>/checkpoint.pt   weights and what is needed to rebuild the model (robench.runs)
    results/<run>/metrics.csv     one row per epoch
    results/<run>/run.json        what was trained, on what, how long; written when training ends
    results/<run>/eval/<dataset>-<source>.csv   one row per (corruption, severity) cell, EVAL_FIELDS
    results/<run>/eval/<dataset>-<source>.json  metadata of the last evaluation written there

Every write goes to a temporary file beside its target and is renamed over it, so a reader (or a
run killed mid-write) never sees half a file. Importing this module imports no torch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from robench.corruptions.protocol import CLEAN, CORRUPTIONS
from robench.errors import RobenchError

CONFIG, CHECKPOINT, METRICS, RUN_JSON, EVAL_DIR = "config.yaml", "checkpoint.pt", "metrics.csv", "run.json", "eval"

# One row per cell; ("clean", 0) is the uncorrupted test set. `frost_textures` says which frost
# photographs a frost cell used ("official" or "procedural"; empty on other cells). The calibration
# columns are fractions (docs/metrics.md): NLL, Brier score, ECE (15 bins), RMS calibration error.
CALIBRATION_FIELDS = ["nll", "brier", "ece", "rms_ce"]
EVAL_FIELDS = ["corruption", "severity", "n", "correct", "error", "dataset", "source", "seed", "frost_textures",
               *CALIBRATION_FIELDS]


def safe_name(text: str) -> str:
    """`text` as a file name: runs of anything but letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    """A CSV with a header row, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RobenchError(f"{path} does not exist") from None
    except json.JSONDecodeError:
        raise RobenchError(f"{path} is not valid JSON") from None


def read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RobenchError(f"{run_dir} is not a run folder (no {CONFIG}); give the folder robench train wrote")
    return yaml.safe_load(path.read_text()) or {}


def eval_csv_path(run_dir: Path, dataset: str, source: str) -> Path:
    return Path(run_dir) / EVAL_DIR / f"{safe_name(f'{dataset}-{source}')}.csv"


def read_eval_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def merge_eval_rows(path: Path, rows: list[dict]) -> list[dict]:
    """`rows` plus the cells of the earlier evaluation in `path` that they do not recompute, if it
    used the same seed (cells of another seed are dropped: one file holds one seed's cells), in
    the protocol's order."""
    if not path.exists() or not rows:
        return rows
    fresh = {(r["corruption"], int(r["severity"])) for r in rows}
    seed = int(rows[0]["seed"])
    kept = [r for r in read_eval_csv(path)
            if (r["corruption"], int(r["severity"])) not in fresh and int(r["seed"]) == seed]
    order = {name: i for i, name in enumerate((CLEAN[0],) + CORRUPTIONS)}
    return sorted(kept + rows, key=lambda r: (order.get(r["corruption"], len(order)), int(r["severity"])))


def policy_label(policy: str, mix: str = "none", jsd: bool = False) -> str:
    """How a run's training recipe is named in leaderboards and default run names: the policy, then
    '+<mixer>' and '+jsd' when used, e.g. 'augmix+jsd', 'randaugment+cutmix'."""
    return policy + (f"+{mix}" if mix != "none" else "") + ("+jsd" if jsd else "")
