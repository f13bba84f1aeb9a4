"""Primitives shared by the corruptions: the generator's float/uint8 conventions and filters.

All functions work on batched (N, C, H, W) tensors on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_unit(images: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """uint8 -> float in [0, 1], as the generator's `x / 255.` (float64 unless it used float32)."""
    return images.to(dtype) / 255.0


def finish(unit: torch.Tensor) -> torch.Tensor:
    """The generator's last step, `np.uint8(np.clip(x, 0, 1) * 255)`: it truncates, never rounds."""
    return (unit.clamp(0, 1) * 255).floor_().to(torch.uint8)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype=torch.float64, device=None) -> torch.Tensor:
    """scipy.ndimage's 1-D Gaussian: radius int(truncate*sigma + 0.5), weights normalised to 1."""
    radius = int(truncate * float(sigma) + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * offsets**2 / float(sigma) ** 2)
    return (weights / weights.sum()).to(dtype=dtype, device=device)


# scipy.ndimage mode -> torch.nn.functional.pad mode.
# scipy 'nearest' repeats the edge; scipy 'reflect' is half-sample symmetric (d c b a | a b c d),
# which torch lacks, so it is built by hand in `_pad_symmetric`; scipy 'mirror' = torch 'reflect'.
_PAD_MODES = {"nearest": "replicate", "mirror": "reflect"}


def _pad_symmetric(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Half-sample symmetric padding along dim (scipy 'reflect'), valid for any pad size."""
    size = x.shape[dim]
    idx = torch.arange(-pad, size + pad, device=x.device)
    period = 2 * size
    idx = idx % period
    idx = torch.where(idx >= size, period - 1 - idx, idx)
    return x.index_select(dim, idx)


def _filter_axis(x: torch.Tensor, kernel: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """Correlate the last-two-dims tensor x (N, C, H, W) with a 1-D kernel along dim (2 or 3)."""
    radius = (kernel.numel() - 1) // 2
    if radius == 0:
        return x * kernel[0]
    n, c, h, w = x.shape
    if mode == "reflect":
        padded = _pad_symmetric(x, radius, dim)
    else:
        pad = (0, 0, radius, radius) if dim == 2 else (radius, radius, 0, 0)
        if mode == "nearest" or radius < x.shape[dim]:
            padded = F.pad(x, pad, mode=_PAD_MODES[mode])
        else:
            raise ValueError(f"mode {mode} needs a kernel shorter than the image")
    weight = kernel.to(x.dtype).view(1, 1, -1, 1) if dim == 2 else kernel.to(x.dtype).view(1, 1, 1, -1)
    out = F.conv2d(padded.reshape(n * c, 1, *padded.shape[2:]), weight)
    return out.reshape(n, c, h, w)


def gaussian_filter(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over H and W of (N, C, H, W) (the channel axis has sigma 0).

    Axes are filtered in scipy's order (rows, then columns); an axis with sigma <= 1e-15 is skipped.
    """
    if float(sigma) <= 1e-15:
        return x
    kernel = gaussian_kernel1d(sigma, truncate, dtype=x.dtype, device=x.device)
    return _filter_axis(_filter_axis(x, kernel, 2, mode), kernel, 3, mode)


def scale_for_size(value: float, size: int, reference: int = 32) -> float:
    """Scale a size-bound parameter set for 32-px images to an image of `size` px (see README)."""
    return value * size / reference


def uniform(shape, low, high, generator: torch.Generator, device, dtype=torch.float64) -> torch.Tensor:
    """U[low, high) draws (broadcast low/high) from the given generator."""
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return low + (high - low) * u


def ceil_int(v: float) -> int:
    return int(math.ceil(v))
