"""Run folders: paths, atomic writes, loading a trained model back."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from robench.errors import RobenchError

CONFIG, CHECKPOINT, METRICS, RUN_JSON, EVAL_DIR = "config.yaml", "checkpoint.pt", "metrics.csv", "run.json", "eval"


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


def atomic_torch_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RobenchError(f"{path} does not exist") from None
    except json.JSONDecodeError:
        raise RobenchError(f"{path} is not valid JSON") from None


def versions() -> dict[str, str]:
    import numpy

    import robench

    out = {"robench": robench.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
           "python": platform.python_version()}
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RobenchError(f"--device {name} asked for, but no CUDA device is available; use --device cpu")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; plain float32 on the CPU (bf16 CPU kernels are slower there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_checkpoint(path: Path) -> dict:
    """A checkpoint dict (weights_only, so no code runs); one-line errors for missing/corrupt files."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise RobenchError(f"no checkpoint at {path}; train the run first (robench train) or give a checkpoint.pt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/foreign files
        raise RobenchError(f"cannot load checkpoint {path} ({type(e).__name__}); it is truncated or not a robench checkpoint") from None
    required = {"model", "num_classes", "state_dict"}
    if not isinstance(checkpoint, dict) or not required <= set(checkpoint):
        raise RobenchError(f"{path} is not a robench checkpoint (needs keys {', '.join(sorted(required))})")
    return checkpoint


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model a checkpoint was trained with and load its weights."""
    from robench.models import build_model

    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model"], checkpoint["num_classes"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise RobenchError(f"checkpoint {path} does not fit model {checkpoint['model']}: {first}") from None
    return model.to(device).eval(), checkpoint


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise RobenchError(f"{run_dir} is not a run folder (no {CONFIG}); give the folder robench train wrote")
    return yaml.safe_load(path.read_text()) or {}
