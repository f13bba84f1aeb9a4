"""CIFAR-10-P: the perturbation sequences of the -P benchmark, batched over sequences (docs/perturbations.md).

A sequence is T frames of one 32x32 test image under a slowly changing perturbation. The ten
perturbations are those the official evaluation reads (hendrycks/robustness,
ImageNet-P/cifar-p-eval.py), each with the frame count and parameters of the block of
ImageNet-P/create_p/make_cifar_p.py that made the released file (for the noises: the first of the
three difficulty blocks, which made `<noise>.npy`; `_2` / `_3` are the others):

  gaussian_noise  31  frame 0 clean, then clamp(x + 0.02 N(0, 1)) per frame (float32, truncated)
  shot_noise      31  frame 0 clean, then Poisson(700 x) / 700 per frame
  motion_blur     21  ImageMagick motion blur radius 6, sigma 1.8, angle (i - 20) * 9 degrees
  zoom_blur       31  frame 0 clean, then the running mean of the image zoomed by 1 + 0.004 i
  spatter         31  one water layer per sequence (normal(0.6, 0.265), blur 1.75, >= 0.7),
                      dripping down a row per frame (rows mixed 0.2 / 0.8)
  brightness      31  V in HSV + (i - 15) * 1.5 / 100
  translate       16  horizontal shift by i - 7 px (black fill)
  rotate          31  rotation by i - 15 degrees (bilinear)
  tilt            31  perspective tilt about both axes by 0.75 (i - 15) degrees (OpenCV warp)
  scale           31  zoom by (2 i + 70) / 100 (bilinear)

The geometric frames are torchvision 0.2's `affine` (the version of the time: `resample=` and the
centre (W/2 + 0.5, H/2 + 0.5)) on Pillow's AFFINE transform, restated here in Pillow's arithmetic
(`_pillow_affine`), and OpenCV's fixed-point `warpPerspective` (`_opencv_perspective`).

Randomness: each sequence draws from its own generator, seeded with `sequence_seed(seed,
perturbation, index)` (index = the image's position in the test set), so a sequence is the same
whatever the batch size or the device kind's chunking. Only gaussian_noise, shot_noise and spatter
draw numbers; the official generator draws from NumPy's / torch's global streams, so no seed
reproduces its files: random perturbations match it in distribution, deterministic ones exactly
up to the deviations docs/perturbations.md lists.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from robench.corruptions import draws
from robench.corruptions._ops import exact_div, gaussian_filter_2d, to_unit
from robench.corruptions.benchmarks import FRAMES, PERTURBATIONS  # the ten, in the official order; frame counts
from robench.corruptions.blur import motion_blur_q16
from robench.corruptions.digital import hsv_to_rgb, rgb_to_hsv
from robench.corruptions.spatter import WATER, water_mask
from robench.errors import RobenchError
from robench.registry import Registry

SIZE = 32  # the generator is written for CIFAR's 32 x 32 (pixel steps, blur radii)
SEQUENCES_PER_CALL = 100  # sequences per generation call on the CPU (float64 frames stay ~25 MB)

# fn(images uint8 (N, 3, 32, 32), generator: draws.Source) -> uint8 (N, T, 3, 32, 32)
FUNCTIONS = Registry("perturbation", order=PERTURBATIONS)

# -------------------------------------------------------------------------------- seeds


def sequence_seed(seed: int, perturbation: str, index: int) -> int:
    """The seed of sequence `index` (the test image it starts from) of one perturbation."""
    digest = hashlib.blake2b(f"{seed}/{perturbation}/p/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # non-negative int63 for torch.Generator


def _frames_of(images: torch.Tensor, count: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, count, 3, H, W), each image repeated (a view)."""
    return images[:, None].expand(-1, count, -1, -1, -1)


# -------------------------------------------------------------------------------- noise


@FUNCTIONS.register("gaussian_noise", "noise: fresh Gaussian noise (std 0.02) per frame; frame 0 clean")
def gaussian_noise(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    """torchvision's ToTensor (float32 / 255), clamp(x + 0.02 randn, 0, 1), then uint8(z * 255)
    (float32, truncated), as the generator's `to_numpy`."""
    n, c, h, w = images.shape
    x = _frames_of(exact_div(images.float(), 255.0), FRAMES["gaussian_noise"] - 1)
    noise = draws.randn(generator, (n, FRAMES["gaussian_noise"] - 1, c, h, w), device=images.device)
    noisy = (x + 0.02 * noise).clamp_(0, 1).mul_(255).to(torch.uint8)
    return torch.cat([images[:, None], noisy], 1)


def _poisson(source: draws.Source, rates: torch.Tensor) -> torch.Tensor:
    """Poisson draws of `rates` (first dimension: the sequence), from one generator or one per sequence."""
    if isinstance(source, torch.Generator):
        return torch.poisson(rates, generator=source)
    parts = rates.split(list(source.sizes))
    return torch.cat([torch.poisson(part, generator=g) for part, g in zip(parts, source.generators)])


@FUNCTIONS.register("shot_noise", "noise: fresh Poisson noise (700 photons) per frame; frame 0 clean")
def shot_noise(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    """uint8(255 * clip(poisson(700 x) / 700, 0, 1)) with x = img / 255. in float64."""
    x = to_unit(images)
    rates = _frames_of(x * 700, FRAMES["shot_noise"] - 1).contiguous()
    counts = _poisson(generator, rates)
    noisy = exact_div(counts, 700.0).clamp_(0, 1).mul_(255).to(torch.uint8)
    return torch.cat([images[:, None], noisy], 1)


# -------------------------------------------------------------------------------- blur


@FUNCTIONS.register("motion_blur", "blur: ImageMagick motion blur (radius 6, sigma 1.8) turning from -180 to 0 deg")
def motion_blur(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    n, c, h, w = images.shape
    t = FRAMES["motion_blur"]
    angles = ((torch.arange(t, dtype=torch.float64) - 20) * 9).repeat(n)
    frames = _frames_of(images, t).reshape(n * t, c, h, w)
    return motion_blur_q16(frames, 6, 1.8, angles).view(n, t, c, h, w)


@FUNCTIONS.register("zoom_blur", "blur: the running mean of zooms by 1 + 0.004 i; frame 0 clean")
def zoom_blur(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    """avg = ToTensor(img); frame i = uint8((avg += ToTensor(zoom_i(img))) / (i + 1) * 255) in
    float32, the zooms being torchvision 0.2's bilinear `affine(scale=1 + 0.004 i)`."""
    n, c, h, w = images.shape
    t = FRAMES["zoom_blur"]
    zooms = _affine_frames(images, [dict(scale=1 + 0.004 * i, bilinear=True) for i in range(1, t)])
    total = exact_div(images.float(), 255.0)
    out = [images]
    for i in range(1, t):
        total = total + exact_div(zooms[:, i - 1].float(), 255.0)
        out.append(exact_div(total, float(i + 1)).mul_(255).to(torch.uint8))
    return torch.stack(out, 1)


# -------------------------------------------------------------------------------- spatter

SPATTER_LAYER = (0.6, 0.265, 1.75, 0.7)  # mean, std, Gaussian sigma, threshold of the water layer
SPATTER_INTENSITY = 0.6
DRIP = (0.2, 0.8)  # np.convolve(column, (0.2, 0.8), 'same'): row r <- 0.2 row r + 0.8 row r - 1


@FUNCTIONS.register("spatter", "weather: one water layer per sequence, dripping down")
def spatter(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    """The -C water spatter's steps (spatter.water_mask) with the -P layer and intensity 0.6, the
    layer moved down by the drip convolution after every frame (no new threshold)."""
    n, c, h, w = images.shape
    mean, std, sigma, threshold = SPATTER_LAYER
    noise = draws.randn(generator, (n, h, w), device=images.device).to(torch.float64)
    layer = gaussian_filter_2d(mean + std * noise, sigma, "nearest")
    layer = torch.where(layer < threshold, 0.0, layer)
    t = FRAMES["spatter"]
    layers = [layer]
    for _ in range(t - 1):
        above = F.pad(layers[-1], (0, 0, 1, 0))[:, :-1]  # row r - 1, zero above the first row
        layers.append(layers[-1] * DRIP[0] + above * DRIP[1])
    l8, d = water_mask(torch.stack(layers, 1).view(n * t, h, w))  # all frames' masks in one batch
    m = (l8 * d).to(torch.float32).view(n, t, 1, h, w)
    peak = m.amax(dim=(3, 4), keepdim=True)
    m = m / peak * SPATTER_INTENSITY  # 0/0 = NaN for an empty layer, as in the generator
    x = exact_div(images.to(torch.float32), 255)[:, None]
    colour = torch.tensor(WATER, dtype=torch.float32, device=images.device).view(1, 1, 3, 1, 1)
    out = torch.where(peak > 0, x + m * colour, 0.0)  # NaN there; np.uint8(NaN) is 0
    return out.clamp_(0, 1).mul_(255).floor_().to(torch.uint8)


# -------------------------------------------------------------------------------- brightness


@FUNCTIONS.register("brightness", "digital: V in HSV shifted by (i - 15) * 0.015")
def brightness(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    n, c, h, w = images.shape
    t = FRAMES["brightness"]
    shifts = torch.tensor([(i - 15) * 1.5 / 100 for i in range(t)], dtype=torch.float64, device=images.device)
    hue, sat, value = rgb_to_hsv(to_unit(_frames_of(images, t).reshape(n * t, c, h, w)))
    value = (value.view(n, t, h, w) + shifts.view(1, t, 1, 1)).clamp_(0, 1).view(n * t, h, w)
    return hsv_to_rgb(hue, sat, value).mul_(255).to(torch.uint8).view(n, t, c, h, w)


# -------------------------------------------------------------------------------- geometry


def inverse_affine(angle: float = 0.0, translate: tuple[float, float] = (0.0, 0.0), scale: float = 1.0,
                   size: int = SIZE) -> tuple[float, ...]:
    """torchvision 0.2's `_get_inverse_affine_matrix` (no shear) about its centre (W/2 + 0.5, H/2 + 0.5):
    the 6 coefficients Pillow's AFFINE transform takes (output -> input coordinates)."""
    centre = size * 0.5 + 0.5
    a = math.radians(angle)
    inv = 1.0 / scale
    d = math.cos(a) * math.cos(a) + math.sin(a) * math.sin(a)
    m = [inv / d * v for v in (math.cos(a), math.sin(a), 0, -math.sin(a), math.cos(a), 0)]
    m[2] += m[0] * (-centre - translate[0]) + m[1] * (-centre - translate[1])
    m[5] += m[3] * (-centre - translate[0]) + m[4] * (-centre - translate[1])
    m[2] += centre
    m[5] += centre
    return tuple(m)


@lru_cache(maxsize=256)
def _pillow_affine(matrix: tuple[float, ...], bilinear: bool, size: int = SIZE):
    """Pillow's AFFINE transform of a size x size image as a gather: for each output pixel the
    source coordinates Pillow's `affine_transform` computes (a0 (x + 0.5) + a1 (y + 0.5) + a2, ...),
    then its filter. Bilinear: (x, y) outside [0, size) gives 0; else x - 0.5, y - 0.5 split into
    floor and fraction, columns clipped to the image, a missing lower row replaced by the upper
    one, v = a + (b - a) dx per row, then by dy, truncated to uint8. Nearest: the pixel
    floor(x), floor(y), 0 outside. Matches Pillow 13 bit for bit (tests compare with it).
    Returns index (and weight) tensors on the CPU."""
    a = matrix
    col, row = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    xs = a[0] * col + a[1] * row + a[2]  # Pillow's affine_transform, term by term
    ys = a[3] * col + a[4] * row + a[5]
    inside = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    if not bilinear:
        col0, row0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
        src = np.clip(row0, 0, size - 1) * size + np.clip(col0, 0, size - 1)
        return torch.from_numpy(src.reshape(-1)), torch.from_numpy(inside.reshape(-1))
    x, y = xs - 0.5, ys - 0.5
    col0, row0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    dx, dy = x - col0, y - row0
    c0, c1 = np.clip(col0, 0, size - 1), np.clip(col0 + 1, 0, size - 1)
    r0 = np.clip(row0, 0, size - 1)
    r1 = np.where((row0 + 1 >= 0) & (row0 + 1 < size), row0 + 1, r0)  # no lower row: v2 = v1
    src = np.stack([r0 * size + c0, r0 * size + c1, r1 * size + c0, r1 * size + c1], -1).reshape(-1, 4)
    weights = np.stack([dx, dy], -1).reshape(-1, 2)
    return torch.from_numpy(src), torch.from_numpy(weights), torch.from_numpy(inside.reshape(-1))


def _affine_frames(images: torch.Tensor, frames: Sequence[dict]) -> torch.Tensor:
    """Each frame's torchvision 0.2 `affine` of every image: uint8 (N, len(frames), 3, H, W)."""
    n, c, h, w = images.shape
    flat = images.reshape(n, c, h * w)
    out = []
    for spec in frames:
        matrix = inverse_affine(spec.get("angle", 0.0), spec.get("translate", (0.0, 0.0)), spec.get("scale", 1.0))
        if spec["bilinear"]:
            src, weights, inside = (t.to(images.device) for t in _pillow_affine(matrix, True))
            # the four taps as contiguous planes (strided tap slices made the arithmetic 5x slower)
            p = flat.index_select(2, src.T.reshape(-1)).view(n, c, 4, h * w).to(torch.float64)
            dx, dy = weights[:, 0], weights[:, 1]
            top = (p[:, :, 1] - p[:, :, 0]).mul_(dx).add_(p[:, :, 0])
            bottom = (p[:, :, 3] - p[:, :, 2]).mul_(dx).add_(p[:, :, 2])
            value = (bottom - top).mul_(dy).add_(top).to(torch.uint8)
        else:
            src, inside = (t.to(images.device) for t in _pillow_affine(matrix, False))
            value = flat[:, :, src]
        out.append(torch.where(inside, value, 0).view(n, c, h, w))
    return torch.stack(out, 1)


@FUNCTIONS.register("translate", "geometry: horizontal shift by -7 .. 8 px")
def translate(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    return _affine_frames(images, [dict(translate=(i - 7, 0), bilinear=False) for i in range(FRAMES["translate"])])


@FUNCTIONS.register("rotate", "geometry: rotation by -15 .. 15 degrees")
def rotate(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    return _affine_frames(images, [dict(angle=i - 15, bilinear=True) for i in range(FRAMES["rotate"])])


@FUNCTIONS.register("scale", "geometry: zoom by 0.70 .. 1.30")
def scale(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    return _affine_frames(images, [dict(scale=(i * 2 + 70) / 100.0, bilinear=True) for i in range(FRAMES["scale"])])


def tilt_matrix(i: int, size: int = SIZE) -> np.ndarray:
    """The generator's perspective matrix of frame i, P2 T RX RY P1 (NumPy, its order of products)."""
    h = w = size
    phi = theta = np.deg2rad(0.75 * (i - 15))
    f = np.sqrt(w ** 2 + h ** 2)
    p1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
    rx = np.array([[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0], [0, np.sin(theta), np.cos(theta), 0],
                   [0, 0, 0, 1]])
    ry = np.array([[np.cos(phi), 0, -np.sin(phi), 0], [0, 1, 0, 0], [np.sin(phi), 0, np.cos(phi), 0], [0, 0, 0, 1]])
    t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    p2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
    return p2 @ t @ rx @ ry @ p1


INTER_BITS = 5  # OpenCV's sub-pixel resolution of the bilinear remap: 1/32 px
COEF_BITS = 15  # and the fixed point of its weights


@lru_cache(maxsize=64)
def _opencv_perspective(i: int, size: int = SIZE):
    """cv2.warpPerspective(x, M, (W, H)) (INTER_LINEAR, BORDER_CONSTANT 0) of frame i as a gather:
    per output pixel the inverse map in double, scaled by 32 and rounded (cvRound), split into the
    integer pixel and a 1/32 fraction, and the four integer weights (32 - a)(32 - b) * 32 ... that
    OpenCV's table holds (they sum to 2^15 exactly). Taps outside the image read 0."""
    inv = np.linalg.inv(tilt_matrix(i, size))
    src, weights = [], []
    for y in range(size):
        for x in range(size):
            wgt = inv[2, 0] * x + inv[2, 1] * y + inv[2, 2]
            wgt = (1 << INTER_BITS) / wgt if wgt else 0.0
            fx = int(np.rint((inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]) * wgt))
            fy = int(np.rint((inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]) * wgt))
            sx, sy = fx >> INTER_BITS, fy >> INTER_BITS
            ax, ay = fx & ((1 << INTER_BITS) - 1), fy & ((1 << INTER_BITS) - 1)
            taps = [(sy, sx, (32 - ay) * (32 - ax)), (sy, sx + 1, (32 - ay) * ax),
                    (sy + 1, sx, ay * (32 - ax)), (sy + 1, sx + 1, ay * ax)]
            src.append([min(max(r, 0), size - 1) * size + min(max(c, 0), size - 1) for r, c, _ in taps])
            weights.append([k * 32 if 0 <= r < size and 0 <= c < size else 0 for r, c, k in taps])
    return torch.tensor(src), torch.tensor(weights, dtype=torch.int64)


@FUNCTIONS.register("tilt", "geometry: perspective tilt by -11.25 .. 11.25 degrees about both axes")
def tilt(images: torch.Tensor, generator: draws.Source) -> torch.Tensor:
    n, c, h, w = images.shape
    flat = images.reshape(n, c, h * w).to(torch.int64)
    out = []
    for i in range(FRAMES["tilt"]):
        src, weights = (t.to(images.device) for t in _opencv_perspective(i))
        p = flat[:, :, src.view(-1)].view(n, c, h * w, 4)
        value = ((p * weights).sum(-1) + (1 << (COEF_BITS - 1))) >> COEF_BITS
        out.append(value.to(torch.uint8).view(n, c, h, w))
    return torch.stack(out, 1)


# -------------------------------------------------------------------------------- entry points


def check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (3, SIZE, SIZE):
        raise RobenchError(f"CIFAR-10-P sequences start from uint8 (N, 3, {SIZE}, {SIZE}) images, got "
                           f"{images.dtype} {tuple(images.shape)}; the generator is written for 32 x 32 only")


def check_perturbation(name: str) -> str:
    FUNCTIONS.get(name)  # RobenchError listing the valid names
    return name


def perturb(images: torch.Tensor, name: str, seeds: Sequence[int]) -> torch.Tensor:
    """uint8 (N, T, 3, 32, 32): the sequences of `name` from uint8 (N, 3, 32, 32) test images,
    sequence k drawing from a generator seeded with `seeds[k]` (on the images' device)."""
    check_images(images)
    function: Callable = FUNCTIONS.get(name).factory
    if len(seeds) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(seeds)} seeds")
    if images.shape[0] == 0:
        return images.new_empty((0, FRAMES[name], 3, SIZE, SIZE))
    generators = [torch.Generator(device=images.device).manual_seed(int(s)) for s in seeds]
    out = function(images, draws.Streams(generators, [1] * len(generators)))
    assert out.dtype == torch.uint8 and out.shape == (images.shape[0], FRAMES[name], 3, SIZE, SIZE), name
    return out


def generated_sequences(images: torch.Tensor, name: str, seed: int, batch: int = SEQUENCES_PER_CALL,
                        offset: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, uint8 (B, T, 3, 32, 32)) over `images` in batches of `batch` sequences; `images` may be
    a slice of the test set starting at global index `offset` (its sequences keep their seeds)."""
    check_perturbation(name)
    for start in range(0, images.shape[0], batch):
        part = images[start:start + batch]
        seeds = [sequence_seed(seed, name, offset + start + k) for k in range(part.shape[0])]
        yield start, perturb(part, name, seeds)


def check_registry() -> None:
    """The registry holds exactly the ten test perturbations, in order (a test calls this)."""
    if tuple(FUNCTIONS) != PERTURBATIONS:
        raise AssertionError(f"registered perturbations {tuple(FUNCTIONS)} differ from {PERTURBATIONS}")
