"""The torch side of run folders: saving and loading checkpoints, rebuilding a trained model, and
the device a run uses (the file layout and the torch-free writers are in `robench.runfiles`)."""

from __future__ import annotations

import contextlib
import io
import platform
from pathlib import Path
from typing import Any

import torch

from robench.errors import RobenchError
from robench.runfiles import CHECKPOINT, atomic_write_bytes


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through the one atomic writer (a checkpoint is never half-written)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


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
    from robench.config import check_device

    check_device(name)
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


@contextlib.contextmanager
def full_fp32():
    """float32 matrix products and convolutions at full IEEE precision inside, whatever the
    process chose (`torch.set_float32_matmul_precision("high")`, which torch.compile suggests, or
    cuDNN's default TF32 convolutions round inputs to a 10-bit mantissa). The settings are
    process-wide, so they are pinned here and restored afterwards."""
    backends = [getattr(getattr(torch.backends, name), op) for name in ("cuda", "cudnn", "mkldnn")
                for op in ("matmul", "conv") if hasattr(getattr(torch.backends, name, None), op)]
    saved = [b.fp32_precision for b in backends]
    for b in backends:
        b.fp32_precision = "ieee"
    try:
        yield
    finally:
        for b, value in zip(backends, saved):
            b.fp32_precision = value


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
