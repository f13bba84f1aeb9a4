"""Primitives shared by the corruptions: the generator's float/uint8 conventions and Gaussian filters.

All functions work on batched tensors on any device.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


def exact_div(x: torch.Tensor, divisor: float) -> torch.Tensor:
    """`x / divisor`, correctly rounded on every device.

    On CUDA, ATen computes `tensor / python_number` as a multiplication by the reciprocal (one more
    rounding, so e.g. 255 / 255. may come out a hair under 1 and truncate to 254); a divisor held
    in a 0-dim tensor on x's device is really divided, as on the CPU. The bit-exact corruptions
    divide through here (tests emulate CUDA's rule on the CPU to hold them to it)."""
    return x / x.new_full((), divisor)


def exact_div_(x: torch.Tensor, divisor: float) -> torch.Tensor:
    """In place `exact_div` (no new buffer for large intermediates)."""
    return x.div_(x.new_full((), divisor))


def to_unit(images: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """uint8 -> float in [0, 1], as the generator's `x / 255.` (float64 unless it used float32)."""
    return exact_div(images.to(dtype), 255.0)


def finish(unit: torch.Tensor) -> torch.Tensor:
    """The generator's last step, `np.uint8(np.clip(x, 0, 1) * 255)`: it truncates, never rounds."""
    return (unit.clamp(0, 1) * 255).floor_().to(torch.uint8)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> list[float]:
    """scipy.ndimage's 1-D Gaussian weights: radius int(truncate * sigma + 0.5), exp(-0.5 / sigma^2
    * i^2) divided by its NumPy sum (the operation order decides the last ulp).

    The exponentials come from `math.exp` (glibc's, correctly rounded), not `np.exp`: NumPy's
    vectorised exp differs by one ulp between NumPy builds and CPUs on some tail weights, so
    scipy's own kernel is not the same everywhere. No golden output depends on that ulp."""
    radius = int(truncate * sigma + 0.5)
    weights = np.array([math.exp(-0.5 / (sigma * sigma) * (i * i)) for i in range(-radius, radius + 1)])
    return (weights / weights.sum()).tolist()


# Two Gaussian filters with scipy.ndimage.gaussian_filter's semantics:
# - gaussian_filter_nearest reproduces scipy's float64 results bit for bit; the deterministic
#   corruptions need that, because many values sit exactly on an integer before the truncation.
# - gaussian_filter_2d runs as two small matrix products, several times faster on the CPU, but sums
#   in another order (last-bit differences in double); the random corruptions use it.


def gaussian_filter_nearest(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over H then W of (N, C, H, W), mode 'nearest', truncate 4
    (radius int(4 sigma + 0.5); radius 0 leaves the image as it is).

    scipy's correlate1d sums a symmetric kernel as x[i] k[0] + (x[i-j] + x[i+j]) k[j], farthest
    pair first; doing the same (products and sums rounded separately) reproduces its float64
    results bit for bit. The edge padding is done once for both axes: replicating columns commutes
    with the row pass.
    """
    kernel = gaussian_kernel1d(sigma)
    r = (len(kernel) - 1) // 2
    if r == 0:
        return x.clone()
    padded = F.pad(x, (r, r, r, r), mode="replicate")

    def correlate(p: torch.Tensor, dim: int, size: int) -> torch.Tensor:
        tap = lambda offset: p.narrow(dim, r + offset, size)  # noqa: E731
        out = tap(0) * kernel[r]
        pair = torch.empty_like(out)
        for j in range(r, 0, -1):
            torch.add(tap(-j), tap(j), out=pair)
            out += pair.mul_(kernel[r + j])
        return out

    return correlate(correlate(padded, 2, x.shape[2]), 3, x.shape[3])


@lru_cache(maxsize=None)
def gaussian_matrix(size: int, sigma: float, mode: str, truncate: float, device: str) -> torch.Tensor:
    """scipy.ndimage's 1-D Gaussian filter over `size` samples (mode 'reflect' = half-sample
    symmetric, or 'nearest' = edge replicate) as a (size, size) float64 matrix."""
    kernel = torch.tensor(gaussian_kernel1d(sigma, truncate=truncate), dtype=torch.float64)
    radius = (kernel.numel() - 1) // 2
    matrix = torch.zeros(size, size, dtype=torch.float64)
    targets = torch.arange(size)
    for tap in range(-radius, radius + 1):
        sources = targets + tap
        if mode == "reflect":
            sources = sources.remainder(2 * size)
            sources = torch.where(sources >= size, 2 * size - 1 - sources, sources)
        else:
            sources = sources.clamp(0, size - 1)
        matrix.index_put_((targets, sources), kernel[tap + radius].expand(size), accumulate=True)
    return matrix.to(device)


def gaussian_filter_2d(x: torch.Tensor, sigma: float, mode: str, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter of float64 maps x (n, H, W) (no-op for sigma <= 1e-15)."""
    if sigma <= 1e-15:
        return x
    rows = gaussian_matrix(x.shape[1], float(sigma), mode, truncate, str(x.device))
    cols = gaussian_matrix(x.shape[2], float(sigma), mode, truncate, str(x.device))
    return rows @ x @ cols.T
