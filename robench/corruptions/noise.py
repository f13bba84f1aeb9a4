"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise (standard) and speckle_noise (extra).

Every value (pixel x channel) of every image gets its own independent draw, as in the reference,
where one draw of shape (32, 32, 3) is made per image. None of these has a size-bound parameter,
so any H x W works unchanged.

Deliberate deviations (distribution-preserving, for speed):
- Arithmetic is float32, not the reference's float64: the random draws dominate any rounding.
- impulse_noise uses one uniform per value (salt if u < a/2, pepper if a/2 <= u < a) instead of
  skimage's two boolean draws; P(salt) = P(pepper) = a/2 and independence per value are the same.
"""

from __future__ import annotations

import torch

from robench.corruptions._ops import finish, to_unit
from robench.corruptions.registry import register


@register("gaussian_noise")
def gaussian_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma^2), sigma in [0, 1] units."""
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    x = to_unit(images, torch.float32)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return finish(x.add_(noise, alpha=sigma))


@register("shot_noise")
def shot_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Poisson(x * photons) / photons: fewer photons per unit intensity is noisier."""
    photons = (500, 250, 100, 75, 50)[severity - 1]
    rates = to_unit(images, torch.float32).mul_(photons)
    return finish(torch.poisson(rates, generator=generator).div_(photons))


@register("impulse_noise")
def impulse_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Salt and pepper per channel value (so the dots are coloured): a share `amount` is flipped,
    half of those to 255 and half to 0; the rest pass through unchanged (the reference's
    u8 -> /255 -> *255 -> truncate round trip is lossless, so uint8 is kept throughout)."""
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    u = torch.rand(images.shape, generator=generator, device=images.device)
    salt = u < amount / 2
    pepper = (u < amount) & ~salt
    return images.masked_fill(salt, 255).masked_fill_(pepper, 0)


@register("speckle_noise")
def speckle_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative noise x + x * N(0, sigma^2): dark pixels stay dark."""
    sigma = (0.06, 0.10, 0.12, 0.16, 0.20)[severity - 1]
    x = to_unit(images, torch.float32)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return finish(x.addcmul_(x, noise, value=sigma))
