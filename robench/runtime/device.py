"""The device a run uses and how it computes: which device, its name in run files, bf16 autocast for
training, full-precision float32 for eval, and the library versions recorded beside results."""

from __future__ import annotations

import contextlib
import platform

import torch

from robench.errors import RobenchError


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
