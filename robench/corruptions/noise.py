"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise (standard) and speckle_noise (extra).

Every value (pixel x channel) of every image gets its own independent draw, as in the reference,
where one draw of shape (H, W, 3) is made per image. None of these has a size-bound parameter, so
any H x W works unchanged; the three generators differ only in their noise levels (the tables
below, read with `protocol.pick`; "scaled" reads cifar10-c's unchanged).

Deliberate deviations (distribution-preserving, for speed):
- gaussian and speckle noise compute in float32, not the reference's float64: the random draws
  dominate any rounding.
- shot_noise samples Poisson counts with alias tables instead of NumPy's samplers: same
  distribution, with the mass beyond ~10 standard deviations (< 1e-20) left out; the counts are
  then turned into pixels in float64 exactly as the reference does.
- impulse_noise uses one uniform per value (salt if u < a/2, pepper if a/2 <= u < a) instead of
  skimage's two boolean draws; P(salt) = P(pepper) = a/2 and independence per value are the same.
"""

from __future__ import annotations

import functools
import math

import torch

from robench.corruptions import draws
from robench.corruptions._ops import finish, to_unit
from robench.corruptions.protocol import pick
from robench.corruptions.registry import FUNCTIONS


# sigma in [0, 1] units, per generator (docs/faithfulness.md).
GAUSSIAN_SIGMA = {
    "cifar10-c": (0.04, 0.06, 0.08, 0.09, 0.10),
    "tiny-imagenet-c": (0.04, 0.08, 0.12, 0.15, 0.18),
    "imagenet-c": (0.08, 0.12, 0.18, 0.26, 0.38),
    "imagenet-c-299": (0.09, 0.13, 0.19, 0.27, 0.40),
}


@FUNCTIONS.register("gaussian_noise", "noise: additive Gaussian noise per pixel")
def gaussian_noise(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """x + N(0, sigma^2), sigma in [0, 1] units."""
    sigma = pick(GAUSSIAN_SIGMA, protocol, severity)
    x = to_unit(images, torch.float32)
    noise = draws.randn(generator, x.shape, device=x.device, dtype=x.dtype)
    return finish(x.add_(noise, alpha=sigma))


@functools.lru_cache(maxsize=None)
def _poisson_tables(photons: int, device: str) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Walker alias tables for Poisson(v / 255 * photons), one row per input level v = 0..255.

    Row v covers counts lo_v .. lo_v + width - 1 with lo_v = max(0, floor(rate - 10 sd - 5)); the
    mass left outside (beyond ~10 standard deviations) is below 1e-20. A draw picks a column
    j = floor(u * width) and keeps it if frac(u * width) < cut - j, else takes the column's alias.
    Since the output depends only on the count, the tables hold the final uint8 values
    floor(clip(k / photons, 0, 1) * 255) computed in float64 as the reference does.
    Built once per severity by the "Robin Hood" pairing (smallest mass with largest), all rows at once.
    """
    rate = torch.arange(256, dtype=torch.float64) / 255 * photons
    lo = (rate - 10 * rate.sqrt() - 5).floor().clamp(min=0)
    width = int(torch.ceil(20 * rate.sqrt().max() + 12))
    k = lo[:, None] + torch.arange(width, dtype=torch.float64)
    pmf = torch.exp(k * rate[:, None].log() - rate[:, None] - torch.lgamma(k + 1))
    pmf[0] = (k[0] == 0).double()  # rate 0: always 0 photons
    mass = pmf / pmf.sum(1, keepdim=True) * width  # 1 = a full column
    keep = torch.ones_like(mass)
    alias = torch.arange(width).repeat(256, 1)
    done = torch.zeros_like(mass, dtype=torch.bool)
    rows = torch.arange(256)
    for _ in range(width - 1):
        small = mass.masked_fill(done, math.inf).argmin(1)
        large = mass.masked_fill(done, -math.inf).argmax(1)
        keep[rows, small] = mass[rows, small]
        alias[rows, small] = large
        mass[rows, large] -= 1 - mass[rows, small]
        done[rows, small] = True
    value = lambda count: finish(count / photons)  # noqa: E731
    cut = torch.arange(width, dtype=torch.float64) + keep
    tables = cut, value(k), value(lo[:, None] + alias.double())
    return (width,) + tuple(t.reshape(-1).to(device) for t in tables)


# Photons per unit intensity (fewer is noisier).
SHOT_PHOTONS = {
    "cifar10-c": (500, 250, 100, 75, 50),
    "tiny-imagenet-c": (250, 100, 50, 30, 15),
    "imagenet-c": (60, 25, 12, 5, 3),
    "imagenet-c-299": (50, 20, 10, 5, 3),
}


@FUNCTIONS.register("shot_noise", "noise: Poisson (photon) noise")
def shot_noise(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """Poisson(x * photons) / photons: fewer photons per unit intensity is noisier.

    Exact Poisson draws by the alias method (torch.poisson is a slow serial loop on CPU): one
    float64 uniform per value picks a column and decides between it and its alias."""
    photons = pick(SHOT_PHOTONS, protocol, severity)
    width, cut, value, alias_value = _poisson_tables(photons, str(images.device))
    u = draws.rand(generator, images.shape, device=images.device, dtype=torch.float64).mul_(width)
    index = u.long().add_(images, alpha=width)  # row v, column floor(u)
    return torch.where(u < cut.take(index), value.take(index), alias_value.take(index))


# Share of values flipped to salt or pepper.
IMPULSE_AMOUNT = {
    "cifar10-c": (0.01, 0.02, 0.03, 0.05, 0.07),
    "tiny-imagenet-c": (0.01, 0.02, 0.05, 0.08, 0.14),
    "imagenet-c": (0.03, 0.06, 0.09, 0.17, 0.27),
    "imagenet-c-299": (0.04, 0.07, 0.10, 0.18, 0.28),
}


@FUNCTIONS.register("impulse_noise", "noise: salt-and-pepper pixels")
def impulse_noise(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """Salt and pepper per channel value (so the dots are coloured): a share `amount` is flipped,
    half of those to 255 and half to 0; the rest pass through unchanged (the reference's
    u8 -> /255 -> *255 -> truncate round trip is lossless, so uint8 is kept throughout)."""
    amount = pick(IMPULSE_AMOUNT, protocol, severity)
    u = draws.rand(generator, images.shape, device=images.device)
    salt = u < amount / 2
    pepper = (u < amount) & ~salt
    return images.masked_fill(salt, 255).masked_fill_(pepper, 0)


# sigma of the multiplicative noise.
SPECKLE_SIGMA = {
    "cifar10-c": (0.06, 0.10, 0.12, 0.16, 0.20),
    "tiny-imagenet-c": (0.15, 0.20, 0.25, 0.30, 0.35),
    "imagenet-c": (0.15, 0.20, 0.35, 0.45, 0.60),
    "imagenet-c-299": (0.16, 0.21, 0.36, 0.46, 0.61),
}


@FUNCTIONS.register("speckle_noise", "noise: multiplicative Gaussian noise (extra)")
def speckle_noise(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """Multiplicative noise x + x * N(0, sigma^2): dark pixels stay dark."""
    sigma = pick(SPECKLE_SIGMA, protocol, severity)
    x = to_unit(images, torch.float32)
    noise = draws.randn(generator, x.shape, device=x.device, dtype=x.dtype)
    return finish(x.addcmul_(x, noise, value=sigma))
