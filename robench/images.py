"""The image conventions of robench's public API, in one place.

Policies (`make_policy`), mixers (`make_mixer`) and `corrupt()` accept the same inputs:

| input                                   | works on                   | returns                         |
| --------------------------------------- | -------------------------- | ------------------------------- |
| uint8 (N, 3, H, W) or one image (3, H, W) | the values as given       | uint8, same shape               |
| float (N, 3, H, W) or (3, H, W) in [0, 1] | round(x * 255), clamped   | float32 in [0, 1], same shape   |
| a policy called with `dtype=torch.float32` | as above                 | float32 in [0, 1]               |
| a mixer: a batch, uint8 or float        | the values as given        | (float32 images, soft targets)  |

So a policy fits inside a per-image torchvision `Compose` after `ToImage()` (uint8) or
`ToDtype(torch.float32, scale=True)` (float). The work is done on uint8 because the reference
implementations (PIL, the official corruption generator) work on 8-bit images; a float input is
quantised to the nearest level first. AugMix's convex mix is not an integer: with a uint8 input it
is rounded to the nearest level, with a float input (or `dtype=torch.float32`) it is returned exact.
Mixers take batches only (mixing needs partners) and always return float32, since a mixed image
and its soft targets are not integers; float inputs are mixed unquantised (e.g. AugMix views).

Bad input (not a tensor, wrong rank, not 3 channels, another dtype) raises `RobenchError`, a
`ValueError`, with one line naming what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robench.errors import RobenchError


@dataclass(frozen=True)
class Batch:
    """A caller's images as the uint8 (N, 3, H, W) batch the engines work on, and how to give the
    result back in the caller's convention."""

    images: Tensor
    single: bool  # the caller gave one (3, H, W) image
    floating: bool  # the caller gave floats in [0, 1]

    def restore(self, out: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """`out` (uint8, or float32 in [0, 1]) in the caller's convention, or as `dtype` if given."""
        want = dtype or (torch.float32 if self.floating else torch.uint8)
        if want == torch.uint8 and out.dtype != torch.uint8:
            out = out.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        elif want != torch.uint8:
            out = out.to(want).div_(255) if out.dtype == torch.uint8 else out.to(want)
        return out[0] if self.single else out


def as_batch(images, who: str) -> Batch:
    """Check and convert a caller's images (see the table above); `who` names the caller in errors."""
    if not isinstance(images, Tensor):
        raise RobenchError(f"{who} needs a torch.Tensor of images, got {type(images).__name__}")
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise RobenchError(f"{who} needs images of shape (N, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise RobenchError(f"{who} needs uint8 images or floats in [0, 1], got {images.dtype}")
    single = images.ndim == 3
    batch = images.unsqueeze(0) if single else images
    floating = batch.is_floating_point()
    if floating:
        batch = batch.float().mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return Batch(batch, single, floating)


def generator_for(device: torch.device, generator: torch.Generator | None, seed: int | None,
                  who: str) -> torch.Generator | None:
    """`generator`, or a new one on `device` seeded with `seed`, or None (torch's default stream).
    Giving both is a mistake: which one should win would be a guess."""
    if generator is not None and seed is not None:
        raise RobenchError(f"{who}: pass generator= or seed=, not both")
    if seed is None:
        return generator
    return torch.Generator(device=device).manual_seed(int(seed))
