"""Weather corruptions: frost and fog, batched, with per-image random draws.

frost: `clip(c0 * x + c1 * crop, 0, 255)` in float64, where `crop` is a random window of one of the
five frost photographs (frost1..5; the generator never picks frost6), shrunk as the protocol's
generator does (at 32 px its `cv2.resize(fx=0.2)`, which is exactly `texture[2::5, 2::5]`). Which textures is an
explicit choice, `textures=` one of "auto", "official", "procedural" (see `frost_textures.py`).

fog: `x + t * plasma`, rescaled by `max / (max + t)` with `max` the image's global maximum, in
float64. The plasma map is the generator's diamond-square fractal, whose noise amplitude is
wibble**2 (a bug of the original, kept); every image gets its own map.

Parameters: one table per protocol (`FROST`, `FOG`, read with protocol.pick); the generators
differ in code only where they must for their image size (docs/faithfulness.md):
- frost: the photographs are shrunk by 0.2 for CIFAR-10-C (32 px), by 0.3 with cv2.resize's
  bilinear interpolation for Tiny-ImageNet-C (64 px), and not at all for ImageNet-C (224 px and
  the 299-px inception script);
  the window is always H x W (frost_textures.texture_bank).
- fog: the plasma map is 32, 64, 256 or (imagenet-c-299) 512 px and its top-left H x W is kept.
Protocol "scaled" (robench's own, any size): CIFAR's tables; frost shrinks the photographs by
0.2 * min(H, W) / 32 (never below what a window of H x W needs), fog draws a map of the next
power of two >= max(H, W).
"""

from __future__ import annotations

import torch

from robench.corruptions import draws, frost_textures
from robench.corruptions._ops import to_unit
from robench.corruptions.protocol import pick
from robench.corruptions.registry import FUNCTIONS

# (image weight, frost weight) per severity, per generator (make_cifar_c.py, make_tinyimagenet_c.py,
# make_imagenet_c.py, make_imagenet_c_inception.py).
FROST = {
    "cifar10-c": ((1.0, 0.2), (1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "tiny-imagenet-c": ((1.0, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
    "imagenet-c": ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "imagenet-c-299": ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
}
# (strength t, wibble decay) per severity, per generator.
FOG = {
    "cifar10-c": ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
    "tiny-imagenet-c": ((0.4, 3.0), (0.7, 3.0), (1.0, 2.5), (1.5, 2.0), (2.0, 1.75)),
    "imagenet-c": ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
    "imagenet-c-299": ((1.5, 2.0), (2.0, 2.0), (2.5, 1.8), (2.5, 1.6), (3.0, 1.5)),
}
# The generators' plasma map sizes (plasma_fractal's default mapsize in each script).
FOG_MAPSIZE = {"cifar10-c": 32, "tiny-imagenet-c": 64, "imagenet-c": 256, "imagenet-c-299": 512}


def _randint(high: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    """Per-element randint(0, high) (exclusive, like NumPy's) for a tensor of bounds `high`."""
    u = draws.rand(generator, high.shape, device=high.device, dtype=torch.float64)
    return torch.minimum((u * high).long(), high - 1)


@FUNCTIONS.register("frost",
                    "weather: blended crops of frost photographs (--frost chooses official or procedural textures)")
def frost(images: torch.Tensor, severity: int, generator: draws.Source, textures: str = "auto",
          protocol: str = "cifar10-c") -> torch.Tensor:
    """`textures` is one of frost_textures.FROST_TEXTURES: "official" (the five photographs, or a
    one-line RobenchError saying how to get them), "procedural" (the deterministic stand-in, no disk
    or network), or "auto" (official when available, else procedural). `corrupt(..., frost=...)`
    passes it; `frost_textures.resolve_frost(textures)` says which source a choice uses."""
    n, _, h, w = images.shape
    image_weight, frost_weight = pick(FROST, protocol, severity)
    bank = frost_textures.texture_bank(h, w, images.device, textures, protocol)
    # Draws: the texture (randint(5)), then the window's top row and left column, each exclusive of
    # its upper bound as in the generator (so the last possible start is never used).
    idx = draws.randint(generator, len(bank.sizes), (n,), device=images.device)
    sizes = bank.sizes[idx]  # (n, 2): texture height, width
    top = _randint(sizes[:, 0] - h, generator)
    left = _randint(sizes[:, 1] - w, generator)
    rows = (top[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (n, h, 1)
    cols = (left[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (n, 1, w)
    crop = bank.textures[idx[:, None, None], rows, cols]  # (n, h, w, 3) uint8, RGB
    crop = crop.permute(0, 3, 1, 2).to(torch.float64)
    out = image_weight * images.to(torch.float64) + frost_weight * crop
    # The generator returns the 0..255 floats and the caller truncates with np.uint8.
    return out.clamp_(0, 255).floor_().to(torch.uint8)


def plasma_fractal(n: int, mapsize: int, decay: float, generator: draws.Source, device) -> torch.Tensor:
    """n diamond-square height maps (n, mapsize, mapsize) in [0, 1], float64, one per image.

    Mirrors the generator: toroidal neighbours (roll), `mean/4 + wibble * U(-wibble, wibble)` for
    each new point (amplitude wibble**2), wibble /= decay per level, then min-max normalised.
    Instead of writing into strided views of the full map (slow), each level keeps the dense grid
    of the points filled so far and interleaves the new centres and edge midpoints into it.
    """
    assert mapsize & (mapsize - 1) == 0, "mapsize must be a power of two"
    grid = torch.zeros((n, 1, 1), dtype=torch.float64, device=device)  # M[0::step, 0::step]
    wibble = 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        u = draws.rand(generator, total.shape, device=device, dtype=torch.float64)
        return total / 4 + wibble * (wibble * (2 * u - 1))

    while grid.shape[1] < mapsize:
        # Squares: the centre of each square of corners gets their mean plus noise.
        square = grid + grid.roll(-1, 1)
        centres = wibbled_mean(square + square.roll(-1, 2))  # M[half::step, half::step]
        # Diamonds: edge midpoints from the two adjacent centres and the two adjacent corners.
        top = wibbled_mean(centres + centres.roll(1, 1) + grid + grid.roll(-1, 2))  # M[0::step, half::step]
        left = wibbled_mean(centres + centres.roll(1, 2) + grid + grid.roll(-1, 1))  # M[half::step, 0::step]
        k = grid.shape[1]
        rows_even = torch.stack([grid, top], -1)  # (n, k, k, 2)
        rows_odd = torch.stack([left, centres], -1)
        grid = torch.stack([rows_even, rows_odd], 2).reshape(n, 2 * k, 2 * k)
        wibble /= decay
    flat = grid.view(n, -1)
    flat -= flat.amin(1, keepdim=True)
    flat /= flat.amax(1, keepdim=True)
    return grid


@FUNCTIONS.register("fog", "weather: plasma-fractal haze")
def fog(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    n, _, h, w = images.shape
    strength, decay = pick(FOG, protocol, severity)
    # "scaled": the next power of two >= max(h, w) (32 at 32 px, as CIFAR's).
    mapsize = FOG_MAPSIZE.get(protocol, 1 << (max(h, w) - 1).bit_length())
    plasma = plasma_fractal(n, mapsize, decay, generator, images.device)[:, None, :h, :w]
    x = to_unit(images)  # float64
    max_val = x.amax(dim=(1, 2, 3), keepdim=True)  # over H, W and channels, as the generator
    # x * max / (max + t), then the generator's clip and truncation; in place, as this is memory-bound.
    x.add_(strength * plasma).mul_(max_val).div_(max_val + strength)
    return x.clamp_(0, 1).mul_(255).floor_().to(torch.uint8)
