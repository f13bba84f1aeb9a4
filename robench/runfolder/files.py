"""The files of a run folder and how they are written: names, atomic writes, the eval-CSV schema.

    results/<run>/config.yaml     the fully resolved TrainConfig (repeat a run with --config)
    results/<run>/checkpoint.pt   weights and what is needed to rebuild the model (robench.runfolder.checkpoints)
    results/<run>/metrics.csv     one row per epoch
    results/<run>/run.json        what was trained, on what, how long; written when training ends
    results/<run>/eval/<dataset>-<source>.csv   one row per (corruption, severity) cell, EVAL_FIELDS
    results/<run>/eval/<dataset>-<source>.json  whose cells the CSV holds, and every evaluation (cellstore)
    results/<run>/eval/.<dataset>-<source>.csv.lock   the CSV's lock (cellstore)
    results/<run>/eval/<dataset>-<source>-predictions.npz   per-image predictions (--save-predictions)

Every write goes to a temporary file beside its target and is renamed over it, so a reader (or a
run killed mid-write) never sees half a file. Importing this module imports no torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from robench.errors import RobenchError
from robench.eval.cell import Cell, order

CONFIG, CHECKPOINT, METRICS, RUN_JSON, EVAL_DIR = "config.yaml", "checkpoint.pt", "metrics.csv", "run.json", "eval"
# metrics.csv: one row per finished epoch (errors in %, the learning rate at the epoch's end).
METRIC_FIELDS = ["epoch", "lr", "train_loss", "train_error", "test_error", "images_per_s", "seconds"]

# One row per cell; ("clean", 0) is the uncorrupted test set. `frost_textures` says which frost
# photographs a frost cell used ("official" or "procedural"; empty on other cells). The calibration
# columns are fractions (docs/metrics.md): NLL, Brier score, ECE (15 bins), RMS calibration error.
CALIBRATION_FIELDS = ["nll", "brier", "ece", "rms_ce"]
# What was measured, recorded on every row (docs/protocol.md): `benchmark` (c: the -C corruptions,
# c-bar, p), `protocol` (whose generator table made the corrupted images: corruptions.protocol.PROTOCOLS),
# `storage` (the protocol's storage step applied to them, e.g. jpeg85, or none) and `subset` (which test
# images: all, or a named subset such as robustbench-5k; a --limit shows in `n`).
SETTING_FIELDS = ["benchmark", "protocol", "storage", "subset"]
EVAL_FIELDS = ["corruption", "severity", "n", "correct", "error", "dataset", "source", "seed", "frost_textures",
               *CALIBRATION_FIELDS, *SETTING_FIELDS]
# The columns a reader needs (later columns may be missing from files written by earlier versions).
EVAL_REQUIRED = EVAL_FIELDS[:8]
# A -P evaluation's rows (eval/<dataset>-p-<source>.csv): one per perturbation (severity 0), its
# sequences' mean flip probability, top-5 distance and Zipf-weighted rank distance (fractions,
# docs/perturbations.md) and frames per sequence, instead of an error.
STABILITY_FIELDS = ["flip_prob", "top5_dist", "zipf_dist"]
P_FIELDS = ["corruption", "severity", "n", "dataset", "source", "seed", *SETTING_FIELDS, *STABILITY_FIELDS, "frames"]
P_REQUIRED = ["corruption", "severity", "n", "seed", *STABILITY_FIELDS[:2]]  # the Zipf distance is optional
# What a missing setting column meant in files written before it existed.
SETTING_DEFAULTS = {"benchmark": "c", "protocol": "cifar10-c", "storage": "none", "subset": "all"}


def safe_name(text: str) -> str:
    """`text` as a file name: runs of anything but letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename: readers never see half
    a file, and a crash after the rename keeps the new one. The file gets the mode a plain `open`
    would give it (0666 less the umask; mkstemp's 0600 would hide results from a shared group).
    An OS error (a folder that is a file, no permission, disk full) is a one-line RobenchError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows has no modes to fix
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise cannot_write(path, e) from None
        raise


def cannot_write(path: Path, error: OSError) -> RobenchError:
    path = Path(path)
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    reason = f"{blocker} is a file, not a folder" if blocker else (error.strerror or str(error))
    return RobenchError(f"cannot write {path} ({reason}); choose a writable folder or fix its permissions")


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def check_run_name(name: str) -> str:
    """A run name is one folder inside the results folder: a name that is empty, '.', '..', holds a
    path separator or is absolute would put (or delete) a run somewhere else. Every name that becomes
    a folder goes through here: train's --name, eval's --name and --ensemble."""
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if name in ("", ".", "..") or any(sep in name for sep in separators) or "\0" in name:
        raise RobenchError(f"run name '{name}' must be a plain folder name (not empty, no '/', not '.' or '..'); "
                           f"choose where runs go with --out-dir")
    return name


def eval_csv_path(run_dir: Path, dataset: str, source: str, tag: str = "") -> Path:
    """eval/<dataset>-<source>.csv, or eval/<dataset>-<tag>-<source>.csv for another benchmark or a
    protocol other than the dataset's own (so that their cells never share a file)."""
    name = "-".join(part for part in (dataset, tag, source) if part)
    return Path(run_dir) / EVAL_DIR / f"{safe_name(name)}.csv"


def eval_json_path(csv_path: Path) -> Path:
    """Beside an eval CSV: whose cells it holds, and every evaluation that wrote there."""
    return Path(csv_path).with_suffix(".json")


def eval_lock_path(csv_path: Path) -> Path:
    """Beside an eval CSV: the lock file taken while the CSV or its .json is read and rewritten."""
    return Path(csv_path).with_name(f".{Path(csv_path).name}.lock")


def predictions_path(csv_path: Path) -> Path:
    """Beside an eval CSV: each image's prediction and confidence per cell (--save-predictions)."""
    return Path(csv_path).with_name(Path(csv_path).stem + "-predictions.npz")


def read_csv_rows(path: Path) -> list[dict]:
    """The rows of a CSV robench wrote (metrics.csv), unchecked; a damaged file is a one-line error."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise RobenchError(f"{path} is not a readable CSV ({type(e).__name__}); restore or delete it") from None


def read_eval_csv(path: Path) -> list[dict]:
    """The rows of an eval CSV, checked: the schema's columns present, every row complete, numbers
    numbers. A damaged file is a one-line RobenchError naming it, not a crash further on."""
    path = Path(path)
    fix = "delete it and run robench eval again"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            stability = STABILITY_FIELDS[0] in (reader.fieldnames or [])  # a -P file
            missing = [c for c in (P_REQUIRED if stability else EVAL_REQUIRED) if c not in (reader.fieldnames or [])]
            if missing:
                raise RobenchError(f"{path} is not a robench eval CSV (no column {', '.join(missing)}); {fix}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise RobenchError(f"{path} is not a readable CSV ({type(e).__name__}); {fix}") from None
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise RobenchError(f"{path} line {line} does not have the header's {len(reader.fieldnames)} fields; {fix}")
        numbers = P_REQUIRED[1:] if stability else ["severity", "n", "correct", "error", "seed"]
        try:
            [float(row[column]) for column in numbers]
            int(row["severity"]), int(row["n"]), int(row["seed"])
        except ValueError:
            raise RobenchError(f"{path} line {line} holds a non-number in {', '.join(numbers)}; {fix}") from None
    return rows


def sort_cells(rows: list[dict]) -> list[dict]:
    """Eval rows in the protocol's order: clean, then each corruption's severities."""
    return sorted(rows, key=lambda r: order(Cell.of(r)))


def policy_label(policy: str, mix: str = "none", jsd: bool = False) -> str:
    """How a run's training recipe is named in leaderboards and default run names: the policy, then
    '+<mixer>' and '+jsd' when used, e.g. 'augmix+jsd', 'randaugment+cutmix'."""
    return policy + (f"+{mix}" if mix != "none" else "") + ("+jsd" if jsd else "")
