"""The corruption registry (name -> batched function) and the `corrupt()` entry point."""

from __future__ import annotations

import torch

from robench.corruptions.protocol import CORRUPTIONS, check_severity
from robench.images import as_batch, generator_for
from robench.registry import Entry, Registry

# Each function is fn(images uint8 (N, 3, H, W), severity, generator, **options) -> uint8, same
# shape. The modules below fill the registry with their decorators when it is first looked in.
FUNCTIONS = Registry("corruption", modules=tuple(
    f"robench.corruptions.{m}" for m in ("noise", "blur", "snow", "weather", "spatter", "elastic", "digital", "jpeg")),
    order=CORRUPTIONS)

# On the CPU a batch is corrupted in pieces of about this many pixels per channel (256 images of
# 32x32): the float64 intermediates stay in cache and skip the page faults of large fresh
# allocations, 3-15x faster than one 10,000-image call. GPUs take the batch whole.
CPU_PIECE_PIXELS = 1 << 18


def get_corruption(name: str) -> Entry:
    """The registry entry of a corruption (its function is `.factory`)."""
    return FUNCTIONS.get(name)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int | None = None, *,
            generator: torch.Generator | None = None, frost: str = "auto") -> torch.Tensor:
    """Corrupt images at severity 1..5, on their device.

    `images` follow the table in `robench.images` (uint8 or float in [0, 1], a batch or one image;
    the result has the input's convention). Every image draws its own randomness from `generator`,
    or from a new one seeded with `seed` (0 when neither is given), so the result is a pure function
    of (images, name, severity, seed, frost, device type). `frost` chooses the frost textures:
    "official" (the five photographs; an error when they cannot be found), "procedural" (a
    stand-in that needs no files) or "auto" (official when available); `resolve_frost` says which
    one "auto" gives.
    """
    batch = as_batch(images, "corrupt()")
    check_severity(severity)
    function = FUNCTIONS.get(name).factory
    if generator is None and seed is None:
        seed = 0
    generator = generator_for(batch.images.device, generator, seed, "corrupt()")
    options = {"textures": frost} if name == "frost" else {}
    x = batch.images
    if x.shape[0] == 0:
        return batch.restore(x.clone())
    piece = max(1, CPU_PIECE_PIXELS // (x.shape[2] * x.shape[3]))
    if x.device.type == "cpu" and x.shape[0] > piece:
        # The pieces draw from the one generator in turn, so the result is still a pure function
        # of (images, name, severity, seed).
        out = torch.cat([function(part, severity, generator, **options) for part in x.split(piece)])
    else:
        out = function(x, severity, generator, **options)
    assert out.dtype == torch.uint8 and out.shape == x.shape, name
    return batch.restore(out)


def check_registry() -> None:
    """Every protocol name has a function and no function lacks a name (a test calls this)."""
    if tuple(FUNCTIONS) != CORRUPTIONS:
        raise AssertionError(f"registered corruptions {tuple(FUNCTIONS)} differ from the protocol's {CORRUPTIONS}")
