"""Checkpoints: saving one atomically, loading one without running code (`weights_only`), and
rebuilding the model a checkpoint was trained with."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from robench.errors import RobenchError
from robench.runfolder.files import CHECKPOINT, atomic_write_bytes


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through the one atomic writer (a checkpoint is never half-written)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


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
    model = build_model(checkpoint["model"], checkpoint["num_classes"], image_size=checkpoint.get("image_size"))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise RobenchError(f"checkpoint {path} does not fit model {checkpoint['model']}: {first}") from None
    return model.to(device).eval(), checkpoint
