"""Name -> corruption function registry, and the `corrupt()` entry point."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import torch

from robench.errors import RobenchError, unknown_name

STANDARD = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CORRUPTIONS = STANDARD + EXTRA
# On the CPU a batch is corrupted in pieces of about this many pixels per channel (256 images of
# 32x32): the float64 intermediates stay in cache and skip the page faults of large fresh
# allocations, 3-15x faster than one 10,000-image call. GPUs take the batch whole.
CPU_PIECE_PIXELS = 1 << 18

# Modules that define corruptions with @register; imported lazily on first use.
_MODULES = ("noise", "blur", "snow", "weather", "spatter", "elastic", "digital", "jpeg")


@dataclass(frozen=True)
class Corruption:
    name: str
    fn: Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
    random: bool  # False for the 8 deterministic corruptions


_REGISTRY: dict[str, Corruption] = {}


def register(name: str, random: bool = True):
    """Decorator: fn(images_uint8_nchw, severity, generator) -> uint8 tensor of the same shape."""

    def wrap(fn):
        _REGISTRY[name] = Corruption(name, fn, random)
        return fn

    return wrap


def _load_all() -> None:
    if len(_REGISTRY) < len(CORRUPTIONS):
        for module in _MODULES:
            importlib.import_module(f"robench.corruptions.{module}")


def get_corruption(name: str) -> Corruption:
    _load_all()
    if name not in _REGISTRY:
        raise unknown_name("corruption", name, CORRUPTIONS)
    return _REGISTRY[name]


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Corrupt a uint8 (N, 3, H, W) batch at severity 1..5; deterministic for (seed, device type)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise RobenchError(
            f"corrupt() needs uint8 images of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if severity not in (1, 2, 3, 4, 5):
        raise RobenchError(f"severity must be 1..5, got {severity}")
    corruption = get_corruption(name)
    generator = torch.Generator(device=images.device)
    generator.manual_seed(int(seed))
    if images.shape[0] == 0:
        return images.clone()
    piece = max(1, CPU_PIECE_PIXELS // (images.shape[2] * images.shape[3]))
    if images.device.type == "cpu" and images.shape[0] > piece:
        # The pieces draw from the one generator in turn, so the result is still a pure function
        # of (images, name, severity, seed).
        out = torch.cat([corruption.fn(part, severity, generator) for part in images.split(piece)])
    else:
        out = corruption.fn(images, severity, generator)
    assert out.dtype == torch.uint8 and out.shape == images.shape, name
    return out
