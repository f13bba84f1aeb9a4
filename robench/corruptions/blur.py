"""Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur (standard), gaussian_blur (extra).

Also the two primitives snow reuses: `motion_blur_q16` (ImageMagick 6's motion blur, batched with a
per-image angle) and `clipped_zoom` (the generator's centre-crop-and-zoom).

Parameters: each function reads its row from a per-protocol table (`protocol.pick`): the CIFAR-10-C
(32 px), Tiny-ImageNet-C (64 px) and ImageNet-C (224 px) generators' own numbers. Where those
generators' code differs beyond the table (the defocus kernel's grid, glass blur's copy chains),
the function branches on the protocol. Protocol "scaled" (robench's own, any size) reads
CIFAR-10-C's table and multiplies every parameter measured in pixels (defocus radius and alias
sigma, Gaussian sigmas, glass-blur displacement, motion-blur radius and sigma) by
`scale = min(H, W) / 32`; zoom factors are ratios and stay as they are. Non-square images are
handled axis by axis.

Deliberate deviations:
- glass_blur under "scaled" computes the displacement pass as a gather from the state at the start
  of each iteration, an order-free approximation once the scaled displacement exceeds 1 px. The
  official protocols follow the generator's copy order exactly (see `_copy_sources`).
- motion_blur drops kernel taps whose normalised weight is below 1e-12 (tails of exp(-i^2 / 2s^2)):
  together they move the Q16 accumulator by < 1e-6 of a level.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from robench.corruptions import draws
from robench.corruptions._ops import exact_div, exact_div_, finish, gaussian_filter_nearest, to_unit
from robench.corruptions.protocol import pick
from robench.corruptions.registry import FUNCTIONS
from robench.runtime.device import full_fp32


def _scale(images: torch.Tensor, protocol: str) -> float:
    """Factor for pixel-sized parameters: min(H, W) / 32 under "scaled", else 1 (the table's own pixels)."""
    return min(images.shape[-2:]) / 32 if protocol == "scaled" else 1.0


# ---------------------------------------------------------------------------------------------
# defocus_blur


def _fma32(a: torch.Tensor, b: float, c: torch.Tensor) -> torch.Tensor:
    """float32 a * b + c rounded once, as an FMA instruction does (the product is exact in float64;
    the float64 sum could only round differently on an exact float32 midpoint, never met here)."""
    return (a.double() * b + c.double()).float()


def _opencv_smooth_f32(disk: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """cv2.GaussianBlur of a float32 square with the symmetric float32 kernel `g` (3 or 5 taps),
    border reflect-101, in OpenCV 4.10's own float32 operation order on x86 (AVX2 with FMA),
    measured against cv2 pass by pass:
    - row pass, vector lanes: fma(x0, k0, (x-1 + x1) * k1), then fma(x-2 + x2, k2, .) for 5 taps;
      its last width % 4 columns run the scalar loop: x0 * k0, then fma(x-j + xj, kj, .) for j = 1, 2;
    - column pass, every column: x0 * k0, then fma(x-j + xj, kj, .) for j = 1, 2."""
    r = (g.numel() - 1) // 2
    k = g[r:].tolist()
    size = disk.shape[0]

    def taps(x: torch.Tensor, dim: int):
        padded = F.pad(x[None, None], (r, r, 0, 0) if dim == 1 else (0, 0, r, r), mode="reflect")[0, 0]
        return lambda j: padded.narrow(dim, r + j, size)

    x = taps(disk, 1)
    rows = x(0) * k[0]
    for j in range(1, r + 1):
        rows = _fma32(x(-j) + x(j), k[j], rows)
    vector = _fma32(x(0), k[0], (x(-1) + x(1)) * k[1])
    if r == 2:
        vector = _fma32(x(-2) + x(2), k[2], vector)
    lanes = size - size % 4
    rows[:, :lanes] = vector[:, :lanes]
    y = taps(rows, 0)
    out = y(0) * k[0]
    for j in range(1, r + 1):
        out = _fma32(y(-j) + y(j), k[j], out)
    return out


def _scaled_disk(radius: float, alias_sigma: float) -> torch.Tensor:
    """robench's own disk for protocol "scaled" (any radius, also fractional ones above 8): a grid
    one pixel wider than the disk with zeros beyond and a 3x3 smoothing in a plain float32 order.
    At 32 px it is the generator's kernel bit for bit; at other sizes it is robench's definition."""
    half = int(math.floor(radius)) + 1
    grid = torch.arange(-half - 1, half + 2, dtype=torch.float64)  # one spare ring: no border effects
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).to(torch.float32)
    disk = disk / disk.sum()
    g = torch.exp(-torch.arange(-1.0, 2.0, dtype=torch.float64) ** 2 / (2 * alias_sigma**2))
    g = (g / g.sum()).to(torch.float32)
    d = F.pad(disk[None, None], (1, 1, 1, 1), mode="reflect")[0, 0]
    d = g[0] * d[:, :-2] + g[1] * d[:, 1:-1] + g[2] * d[:, 2:]
    d = g[0] * d[:-2] + g[1] * d[1:-1] + g[2] * d[2:]
    return d[1:-1, 1:-1]


def disk_kernel(radius: float, alias_sigma: float, protocol: str = "cifar10-c") -> torch.Tensor:
    """The generator's defocus kernel: a normalised float32 disk (X^2 + Y^2 <= r^2) smoothed by
    OpenCV's float32 GaussianBlur of sigma `alias_sigma`, cropped to its nonzero part.

    The generator draws the disk on a fixed grid, X, Y in -8..8 smoothed by a 3x3 Gaussian when
    r <= 8, else -r..r with a 5x5 one; at r = 8 and 10 (ImageNet-C) the disk touches the grid's
    edge, so OpenCV's border (reflect-101) shapes the outer ring. Reproduces cv2 4.10 bit for bit for
    the 15 kernels of the three generators (docs/faithfulness.md). "scaled" has its own kernel."""
    if protocol == "scaled":
        return _scaled_disk(radius, alias_sigma)
    half, size = (8, 3) if radius <= 8 else (int(radius), 5)
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).to(torch.float32)
    disk = disk / disk.sum()
    # cv2.getGaussianKernel: exp(-x^2 / 2 sigma^2) times 1 / sum, in double, then float32.
    x = torch.arange(-(size // 2), size // 2 + 1, dtype=torch.float64)
    g = torch.exp(-(x * x) / (2 * alias_sigma**2))
    g = (g * (1 / g.sum())).to(torch.float32)
    d = _opencv_smooth_f32(disk, g)
    nonzero = (d != 0).nonzero()
    (top, left), (bottom, right) = nonzero.min(0).values.tolist(), nonzero.max(0).values.tolist()
    return d[top : bottom + 1, left : right + 1]


# (disk radius, alias sigma) in pixels, per generator.
DEFOCUS = {
    "cifar10-c": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "tiny-imagenet-c": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "imagenet-c": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "imagenet-c-299": ((4, 0.1), (5, 0.5), (7, 0.5), (10, 0.5), (12, 0.5)),
}


@FUNCTIONS.register("defocus_blur", "blur: convolution with an anti-aliased disk")
def defocus_blur(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """Correlation with a disk kernel, OpenCV BORDER_REFLECT_101, in float64: the kernels sum to
    1 + 1e-9..5e-8, so flat areas land just above an integer and float32 would truncate them down."""
    radius, alias = pick(DEFOCUS, protocol, severity)
    s = _scale(images, protocol)
    kernel = disk_kernel(radius * s, alias * s, protocol).to(torch.float64)
    half = (kernel.shape[0] - 1) // 2
    x = to_unit(images, torch.float64)
    h, w = x.shape[-2:]
    padded = F.pad(x, (half, half, half, half), mode="reflect")
    # Taps below 1e-20 (2e-23 at severity 5) cannot change a float64 sum of [0, 1] values; the
    # 2.8e-12 corners at severity 4 can (a few values sit that close to an integer) and stay.
    taps = [(i, j, float(kernel[i, j])) for i, j in (kernel > 1e-20).nonzero().tolist()]
    i, j, weight = taps[0]
    out = padded[..., i : i + h, j : j + w] * weight
    for i, j, weight in taps[1:]:
        out.add_(padded[..., i : i + h, j : j + w], alpha=weight)
    return finish(out)


# ---------------------------------------------------------------------------------------------
# glass_blur


# (Gaussian sigma, largest displacement d, iterations), per generator.
GLASS = {
    "cifar10-c": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "tiny-imagenet-c": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
    "imagenet-c": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "imagenet-c-299": ((0.8, 1, 3), (1, 3, 1), (1.1, 2, 4), (1.2, 4, 2), (1.6, 5, 2)),
}


def _copy_sources(src: torch.Tensor) -> torch.Tensor:
    """Where each pixel's value comes from after one pass of the generator's copy loop.

    The loop visits pixels from the bottom-right to the top-left (decreasing flat index) and copies
    into each the pixel `src` points at, as it is at that moment: a pixel with a larger flat index
    has already been visited and holds its own copy (for d >= 2 an offset of +1 row or column points
    there), a smaller one still holds its value from before the pass. So a pixel's final source is
    found by following `src` while it points to a larger index; pixels never visited point to
    themselves. Pointer jumping resolves all chains at once in log2(longest chain) steps.
    `src`: (N, H*W) flat indices."""
    follow = src > torch.arange(src.shape[1], device=src.device)
    while bool(follow.any()):
        src, follow = torch.where(follow, src.gather(1, src), src), follow & follow.gather(1, src)
    return src


@FUNCTIONS.register("glass_blur", "blur: Gaussian blur with local pixel swaps")
def glass_blur(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """Gaussian blur -> u8, then `iterations` passes where every pixel (except the first d + 1 and
    the last d - 1 rows and columns) takes the value of a random
    neighbour at offsets in [-d, d) (its "swap" only copies), then blur again. Sigma 0.05 (CIFAR
    severity 1) has scipy radius 0: no blur at all. At d = 1 (CIFAR) the offsets are {-1, 0}, so no
    pixel reads one already copied; larger d follows the generator's copy chains exactly, except
    under "scaled", which copies from the state before each pass (see the module docstring)."""
    sigma, delta, iterations = pick(GLASS, protocol, severity)
    s = _scale(images, protocol)
    sigma, delta = sigma * s, max(1, round(delta * s))
    n, c, h, w = images.shape
    device = images.device

    def blur(x: torch.Tensor) -> torch.Tensor:  # float64 in scipy's order: flat areas truncate alike
        return finish(gaussian_filter_nearest(to_unit(x, torch.float64), sigma))

    x = blur(images)
    # Each visited pixel draws one of (2d)^2 offsets (dy, dx); the reference visits rows
    # H-d .. d+1 and columns W-d .. d+1 (31..2 at 32 px with d = 1); the rest copy themselves.
    side = 2 * delta
    choice = torch.arange(side * side, device=device)
    offsets = (choice // side - delta) * w + (choice % side - delta)
    base = torch.arange(h * w, device=device).view(h, w)
    for _ in range(iterations):
        drawn = draws.randint(generator, side * side, (n, h - side, w - side), device=device)
        src = base.repeat(n, 1, 1)
        src[:, delta + 1 : h - delta + 1, delta + 1 : w - delta + 1] += offsets[drawn]
        src = src.view(n, h * w)
        if protocol != "scaled":
            src = _copy_sources(src)
        x = x.view(n, c, h * w).gather(2, src.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    return blur(x)


# ---------------------------------------------------------------------------------------------
# motion_blur (ImageMagick 6, Q16)


def motion_kernel(radius: float, sigma: float) -> torch.Tensor:
    """IM6's one-sided motion kernel: width 2*ceil(radius)+1, weights exp(-i^2/2s^2) normalised,
    with negligible tail taps dropped (see the module docstring)."""
    width = 2 * math.ceil(radius) + 1
    i = torch.arange(width, dtype=torch.float64)
    k = torch.exp(-(i**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    k = k / k.sum()
    return k[k >= 1e-12]  # the weights decrease with i, so this keeps a prefix


def motion_blur_q16(images: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor) -> torch.Tensor:
    """ImageMagick 6 MotionBlurImage on uint8 (N, C, H, W), one angle (degrees, (N,)) per image.

    out(col, row) = sum_i k_i * in(clamp(col + ceil(i cos a - 0.5)), clamp(row + ceil(i sin a - 0.5)))
    in float64 on Q16 values (v * 257), then Q = floor(acc + 0.5) and the 8-bit PNG value
    floor(Q / 257). Each output pixel weighs the pixels at and ahead of it along the angle (y points
    down), so a bright dot smears backwards. Checked against IM 6.9.11 Q16 (`convert -motion-blur`):
    identical on 632,992 values (photos, snow layers, random 8-48 px images, all angles, radii 6-14).

    Batched without a per-tap pixel gather: rows are padded with copies of their edge pixels so a
    clamped column shift becomes a window start, and each tap copies one W-long window per
    (image, channel, row) with index_select.
    """
    n, c, h, w = images.shape
    device = images.device
    k = motion_kernel(radius, sigma)
    taps = k.numel()
    i = torch.arange(taps, dtype=torch.float64, device=device)
    theta = torch.deg2rad(angles.to(device=device, dtype=torch.float64))
    ox = torch.ceil(i * torch.cos(theta)[:, None] - 0.5).long()  # (N, taps), |ox| <= i
    oy = torch.ceil(i * torch.sin(theta)[:, None] - 0.5).long()
    pad = taps - 1
    padded = torch.cat([images[..., :1].expand(n, c, h, pad), images, images[..., -1:].expand(n, c, h, pad)], dim=3)
    flat = padded.reshape(-1)
    windows = flat.as_strided((flat.numel() - w + 1, w), (1, 1))  # every W-long run, no copy
    plane = (torch.arange(n * c, device=device) * h).view(n, c, 1)  # first row of each (image, channel)
    rows = torch.arange(h, device=device).view(1, 1, h)
    acc = torch.zeros(n * c * h, w, dtype=torch.float64, device=device)
    for t, weight in enumerate(k.tolist()):
        src_rows = (rows + oy[:, t, None, None]).clamp_(0, h - 1)
        starts = (plane + src_rows) * (w + 2 * pad) + pad + ox[:, t, None, None]  # (N, C, H)
        acc.add_(windows.index_select(0, starts.view(-1)).double(), alpha=weight)  # explicit cast: 3x faster
    q = acc.mul_(257.0).add_(0.5).floor_().clamp_(0, 65535)
    return exact_div_(q, 257).floor_().to(torch.uint8).view(n, c, h, w)


# ImageMagick's (radius, sigma) in pixels, per generator.
MOTION = {
    "cifar10-c": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "tiny-imagenet-c": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    "imagenet-c": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "imagenet-c-299": ((12, 4), (17, 6), (17, 9), (17, 13), (22, 16)),
}


@FUNCTIONS.register("motion_blur", "blur: a line kernel at a random angle per image")
def motion_blur(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """Motion blur at a random angle in U(-45, 45) degrees per image (13 to 19 px trails at 32 px)."""
    radius, sigma = pick(MOTION, protocol, severity)
    s = _scale(images, protocol)
    angles = draws.rand(generator, (images.shape[0],), device=images.device, dtype=torch.float64)
    return motion_blur_q16(images, radius * s, sigma * s, angles * 90 - 45)


# ---------------------------------------------------------------------------------------------
# zoom_blur


def clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """The generator's clipped_zoom on float (N, C, H, W), per axis of size L:
    crop ceil(L / zoom) centred (top = (L - crop) // 2), zoom it bilinearly with align-corners
    sampling (scipy.ndimage.zoom order 1) to round(crop * zoom) (half to even: 32.5 -> 32), then keep
    L from offset (out - L) // 2, which anchors a 33-px result at the top-left."""
    h, w = x.shape[-2:]
    crops = [math.ceil(size / zoom) for size in (h, w)]
    tops = [(size - crop) // 2 for size, crop in zip((h, w), crops)]
    outs = [round(crop * zoom) for crop in crops]
    crop = x[..., tops[0] : tops[0] + crops[0], tops[1] : tops[1] + crops[1]]
    zoomed = F.interpolate(crop, size=outs, mode="bilinear", align_corners=True)
    trims = [(out - size) // 2 for out, size in zip(outs, (h, w))]
    return zoomed[..., trims[0] : trims[0] + h, trims[1] : trims[1] + w]


# np.arange(1, stop, step) of zoom factors, per generator.
ZOOMS = {
    "cifar10-c": ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
    "tiny-imagenet-c": ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
    "imagenet-c": ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
    "imagenet-c-299": ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
}


def zoom_factors(severity: int, protocol: str = "cifar10-c") -> list[float]:
    """np.arange(1, stop, step) as NumPy computes it: ceil((stop - 1) / step) factors
    1 + i * (float(1 + step) - 1). The float end point can be included: CIFAR's arange(1, 1.06,
    0.01) holds 7 factors, up to 1.06 (7, 12, 16, 21, 26 over the severities; ImageNet-C's 12, 16,
    11, 13, 11)."""
    stop, step = pick(ZOOMS, protocol, severity)
    count = math.ceil((stop - 1.0) / step)
    delta = (1.0 + step) - 1.0
    return [1.0 + i * delta for i in range(count)]


def _zoom_axis(size: int, zoom: float) -> tuple[torch.Tensor, torch.Tensor]:
    """For each output index along an axis of clipped_zoom: the two source indices (in the full
    image) and their float64 bilinear weights, computed as torch's align-corners interpolation does."""
    crop = math.ceil(size / zoom)
    top, out = (size - crop) // 2, round(crop * zoom)
    trim = (out - size) // 2
    pos = torch.arange(trim, trim + size, dtype=torch.float64) * ((crop - 1) / (out - 1))
    lo = pos.floor().long().clamp_(max=crop - 1)
    frac = pos - lo
    return torch.stack([top + lo, top + (lo + 1).clamp(max=crop - 1)], 1), torch.stack([1 - frac, frac], 1)


_BLOCK = 8  # output tile of the blocked zoom-blur operator


@functools.lru_cache(maxsize=16)
def _zoom_operator(factors: tuple[float, ...], h: int, w: int, device: str):
    """The zoom blur's pieces for an H x W plane.

    taps: every output pixel's bilinear sources (plane offsets) and float64 weights over all zoom
    factors, (H*W, factors*4) each, in zoom order. blocks: the summed linear map cut into 8 x 8
    output tiles, each with the input window its sources span (zooms only pull pixels toward the
    centre, a few pixels at 32 px) and a (window, 64) float32 matrix: ~6x fewer flops than dense.
    """
    sources, weights = [], []
    for z in factors:
        (rows, row_w), (cols, col_w) = _zoom_axis(h, z), _zoom_axis(w, z)
        sources.append((rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(h * w, 4))
        weights.append((row_w[:, None, :, None] * col_w[None, :, None, :]).reshape(h * w, 4))
    sources, weights = torch.cat(sources, 1), torch.cat(weights, 1)
    blocks = []
    for top in range(0, h, _BLOCK):
        for left in range(0, w, _BLOCK):
            out_rows, out_cols = slice(top, min(top + _BLOCK, h)), slice(left, min(left + _BLOCK, w))
            pixels = (torch.arange(h)[out_rows, None] * w + torch.arange(w)[None, out_cols]).flatten()
            src = sources[pixels]
            src_rows, src_cols = src // w, src % w
            r0, c0 = int(src_rows.min()), int(src_cols.min())
            in_rows, in_cols = slice(r0, int(src_rows.max()) + 1), slice(c0, int(src_cols.max()) + 1)
            local = (src_rows - r0) * (in_cols.stop - c0) + (src_cols - c0)
            dest = torch.arange(pixels.numel())[:, None].expand_as(local)
            matrix = torch.zeros((in_rows.stop - r0) * (in_cols.stop - c0), pixels.numel(), dtype=torch.float64)
            matrix.index_put_((local.flatten(), dest.flatten()), weights[pixels].flatten(), accumulate=True)
            blocks.append((out_rows, out_cols, in_rows, in_cols, matrix.float().to(device)))
    return sources.to(device), weights.to(device), blocks


def _zoom_blur_at(x: torch.Tensor, positions: torch.Tensor, sources, weights) -> torch.Tensor:
    """The reference's exact arithmetic at some flat positions of float32 x (N, C, H, W): each zoom's
    sample in float64 rounded to float32, summed one zoom after another in float32, then
    (x + sum) / (n + 1) and the truncation."""
    flat = x.reshape(-1)
    pixel = positions % (x.shape[-2] * x.shape[-1])
    src = sources.index_select(0, pixel).add_((positions - pixel)[:, None])
    samples = flat.take(src).double().mul_(weights.index_select(0, pixel))
    samples = samples.view(positions.numel(), -1, 4).sum(-1).float()  # (positions, zooms)
    total = torch.zeros_like(samples[:, 0])
    for k in range(samples.shape[1]):  # sequential float32 accumulation, as `out += clipped_zoom(x, z)`
        total += samples[:, k]
    return finish(exact_div(flat[positions] + total, samples.shape[1] + 1))


_FAST_ZOOM_MAX = 128 * 128  # pixels per plane for the blocked-matrix path (its matrices stay < 40 MB)


@FUNCTIONS.register("zoom_blur", "blur: the mean of centre zooms")
def zoom_blur(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """Mean of the image and its clipped zooms, bit-exact with the reference's float32 arithmetic.

    The blur is a fixed linear map, so it runs as a few cached tile matrices (GEMMs). That lands
    within 2e-4 of the reference's float32 result, which only matters where the result is within
    that of an integer (flat areas, ~1-3% of values): those are recomputed exactly.
    """
    factors = zoom_factors(severity, protocol)
    n, c, h, w = images.shape
    x = to_unit(images, torch.float32).contiguous()  # flat plane offsets below (channels-last inputs too)
    if h * w > _FAST_ZOOM_MAX:  # large images: the reference's loop, zoom by zoom
        x64, total = x.double(), torch.zeros_like(x)
        for z in factors:
            total += clipped_zoom(x64, z).float()
        return finish(exact_div(x + total, len(factors) + 1))
    sources, weights, blocks = _zoom_operator(tuple(factors), h, w, str(images.device))
    planes = x.view(n * c, h, w)
    value = planes.clone()
    with full_fp32():  # TF32 would move values far beyond the exact recomputation's reach
        for out_rows, out_cols, in_rows, in_cols, matrix in blocks:
            window = planes[:, in_rows, in_cols].reshape(n * c, -1)
            value[:, out_rows, out_cols] += (window @ matrix).view(n * c, out_rows.stop - out_rows.start, -1)
    value = exact_div_(value, len(factors) + 1).mul_(255).view(-1)
    out = value.clamp(0, 255).floor_().to(torch.uint8)
    near = (value - value.round()).abs_().lt_(1e-3).nonzero().squeeze(1)
    if near.numel():
        out[near] = _zoom_blur_at(x, near, sources, weights)
    return out.view(n, c, h, w)


# ---------------------------------------------------------------------------------------------
# gaussian_blur (extra)


# sigma in pixels, per generator.
GAUSSIAN_BLUR_SIGMA = {
    "cifar10-c": (0.4, 0.6, 0.7, 0.8, 1.0),
    "tiny-imagenet-c": (0.5, 0.75, 1.0, 1.25, 1.5),
    "imagenet-c": (1.0, 2.0, 3.0, 4.0, 6.0),
    "imagenet-c-299": (1.5, 2.5, 3.5, 4.5, 6.5),
}


@FUNCTIONS.register("gaussian_blur", "blur: Gaussian filter (extra)")
def gaussian_blur(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    """scipy Gaussian filter (mode 'nearest', truncate 4) in float64, sigma in pixels."""
    sigma = pick(GAUSSIAN_BLUR_SIGMA, protocol, severity) * _scale(images, protocol)
    return finish(gaussian_filter_nearest(to_unit(images, torch.float64), sigma))
