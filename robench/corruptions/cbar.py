"""CIFAR-10-C-bar's 10 corruptions as batched tensor programs, seeded like robench's -C engine.

Each corruption is two functions, written from the generator's Transform classes
(facebookresearch/augmentation-corruption, imagenet_c_bar/corrupt.py; docs/cbar.md):
- `sample(n, magnitude, source, device)`: the random parameters of n images, every draw a tensor
  whose first dimension is the image (draws.py), a fixed number of draws per call. Where the
  generator draws a seed and then makes its own draws from `RandomState(seed)` (noise phases,
  cutout grid, ray lengths, line positions), robench draws those quantities directly, with the
  same distributions.
- `apply(images, magnitude, **params)`: the generator's `transform()` on uint8 (N, 3, 32, 32) with
  those explicit parameters, written to give its numbers: the tests feed it the parameters the
  official code sampled and compare the pixels (docs/cbar.md lists what is bit-exact).

`corrupt_bar(images, name, severity, seed)` is one call; `generated_bar_batches` /
`corrupt_bar_chunks` follow the -C chunk contract (chunk k of a cell seeded with
cbar_protocol.chunk_seed), so an image's corruption does not depend on batching or device count.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from robench.corruptions import draws
from robench.corruptions._ops import exact_div
from robench.corruptions.cbar_protocol import CBAR_CORRUPTIONS, CHUNK, IMAGE_SIZE, chunk_seed, magnitude
from robench.corruptions.protocol import check_severity
from robench.errors import RobenchError
from robench.images import as_batch, generator_for
from robench.registry import Entry, Registry

F64 = torch.float64
S = IMAGE_SIZE  # the generator's im_size for CIFAR
MAX_RAYS = 199  # randint(50, 200)
GRID = 40  # the largest cutout grid side: int(4 * 32 // scale) with scale >= 3.2
MAX_LINES = 8  # int(0.25 * 32) lines at the largest magnitude
# On the CPU `apply` runs in pieces of this many images (float64 intermediates stay in cache).
CPU_PIECE = 256


@dataclass(frozen=True)
class BarCorruption:
    sample: Callable[..., dict]
    apply: Callable[..., torch.Tensor]


BAR = Registry("c-bar corruption", order=CBAR_CORRUPTIONS)


def _register(name: str, description: str, sample: Callable[..., dict]):
    def wrap(apply):
        BAR.add(name, BarCorruption(sample, apply), description)
        return apply

    return wrap


def float_parameter(level: float, maxval: float) -> float:
    """The generator's float_parameter: float(level) * maxval / 10."""
    return float(level) * maxval / 10.0


def _pixel_grid(device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index (float64, (32, 32)): the generator's point = [y, x]."""
    r = torch.arange(S, dtype=F64, device=device)
    return r[:, None].expand(S, S), r[None, :].expand(S, S)


def _finish(x: torch.Tensor) -> torch.Tensor:
    """`np.clip(x, 0, 255).astype(np.uint8)`: truncation."""
    return x.clamp(0, 255).trunc().to(torch.uint8)


def _uniform(source, shape, low: float, high: float, device) -> torch.Tensor:
    """NumPy's uniform(low, high): low + (high - low) * U[0, 1)."""
    return low + (high - low) * draws.rand(source, shape, device=device, dtype=F64)


# ---------------------------------------------------------------------------------------------
# Fourier noises: blue_noise_sample, brownish_noise


@functools.lru_cache(maxsize=None)
def _power(kind: str, device: str) -> torch.Tensor:
    y, x = _pixel_grid("cpu")
    norm = torch.sqrt((x - S / 2) ** 2 + (y - S / 2) ** 2)  # np.linalg.norm([x, y] - center)
    power = norm if kind == "blue" else 1 / (norm**2 + 1)
    return power.to(device)


def _fourier_noise(phases: torch.Tensor, kind: str) -> torch.Tensor:
    """The generator's gen_noise for an even size, from its (32, 16) phases: the phases mirrored
    (not conjugated) into the right half, times the power, rolled by 16, the real part of the
    inverse FFT, divided by its (population) standard deviation. (N, K, 32, 16) -> (N, K, 32, 32)."""
    full = torch.cat([phases, phases.flip(-2, -1)], dim=-1)
    power = _power(kind, str(phases.device))
    spectrum = torch.complex(power * torch.cos(full), power * torch.sin(full))
    noise = torch.fft.ifft2(spectrum.roll((S // 2, S // 2), dims=(-2, -1))).real
    return noise / noise.std(dim=(-2, -1), unbiased=False, keepdim=True)


def _sample_phases(channels: int):
    def sample(n, m, source, device):
        return {"phases": _uniform(source, (n, channels, S, S // 2), 0.0, 2 * math.pi, device)}

    return sample


@_register("blue_noise_sample", "pixels kept where a blue-noise field exceeds a threshold, else black", _sample_phases(1))
def blue_noise_sample(images: torch.Tensor, m: float, phases: torch.Tensor) -> torch.Tensor:
    threshold = float_parameter(m, 3.0) - 2.5
    mask = _fourier_noise(phases, "blue") > threshold  # one field for all three channels
    return images * mask.to(torch.uint8)


@_register("brownish_noise", "additive 1/(f^2+1) noise, one field per channel", _sample_phases(3))
def brownish_noise(images: torch.Tensor, m: float, phases: torch.Tensor) -> torch.Tensor:
    intensity = float_parameter(m, 64)
    return _finish(images.to(F64) + intensity * _fourier_noise(phases, "brown"))


# ---------------------------------------------------------------------------------------------
# checkerboard_cutout


def _sample_checkerboard(n, m, source, device):
    angle = _uniform(source, (n,), 0.0, 2 * math.pi, device)
    scale = (_uniform(source, (n,), 0.1, 0.25, device) * S).clamp(min=1.0)
    return {"angle": angle, "scale": scale, "grid": draws.rand(source, (n, GRID, GRID), device=device, dtype=F64)}


def _py_mod2(x: torch.Tensor) -> torch.Tensor:
    """Python's float `x % 2` (fmod, then moved into [0, 2) when the signs differ)."""
    r = torch.fmod(x, 2.0)
    return torch.where((r != 0) & (r < 0), r + 2.0, r)


@_register("checkerboard_cutout", "grey squares on some cells of a rotated checkerboard", _sample_checkerboard)
def checkerboard_cutout(images: torch.Tensor, m: float, angle: torch.Tensor, scale: torch.Tensor,
                        grid: torch.Tensor) -> torch.Tensor:
    """A pixel turns grey (128) on the cells of one parity whose grid uniform is below the fraction.
    Quirk kept: cells with negative coordinates index the grid from its end (NumPy's negative
    indices), so the grid of side int(128 // scale) wraps."""
    fraction = float_parameter(m, 1.0)
    y, x = _pixel_grid(images.device)
    c, s, sc = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None], scale[:, None, None]
    nx = (c * y + s * x) / sc
    ny = (-s * y + c * x) / sc
    parity_differs = _py_mod2(nx).trunc() != _py_mod2(ny).trunc()
    side = torch.div(4.0 * S, scale, rounding_mode="floor").long()[:, None, None]
    ix, iy = nx.trunc().long(), ny.trunc().long()
    ix, iy = torch.where(ix < 0, ix + side, ix), torch.where(iy < 0, iy + side, iy)
    n = images.shape[0]
    cells = grid.reshape(n, -1).gather(1, (ix * GRID + iy).reshape(n, -1)).reshape(n, S, S) < fraction
    keep = (parity_differs | ~cells)[:, None]
    return torch.where(keep, images, torch.full_like(images, 128))


# ---------------------------------------------------------------------------------------------
# scipy.ndimage's order-3 spline interpolation (scipy 1.5, mode 'constant'): rotate and zoom


def _spline_weights(cc: torch.Tensor) -> list[torch.Tensor]:
    """scipy's get_spline_interpolation_weights for order 3, term by term (float64)."""
    x = cc - torch.floor(cc)
    y, z = x, 1.0 - x
    w1 = exact_div(y * y * (y - 2.0) * 3.0 + 4.0, 6.0)
    w2 = exact_div(z * z * (z - 2.0) * 3.0 + 4.0, 6.0)
    w0 = exact_div(z * z * z, 6.0)
    return [w0, w1, w2, 1.0 - w0 - w1 - w2]


def _mirror(idx: torch.Tensor, n: int = S) -> torch.Tensor:
    """scipy's mirror extension of spline coefficient indices (... 2 1 | 0 1 ... n-1 | n-2 ...)."""
    period = 2 * n - 2
    idx = idx.abs() % period
    return torch.where(idx >= n, period - idx, idx)


def _taps(rows: torch.Tensor, cols: torch.Tensor, device: str) -> tuple[torch.Tensor, ...]:
    """The 16 taps of order-3 spline interpolation at input coordinates (rows, cols) (P points):
    flat coefficient indices (16, P), row and column weights (16, P) and whether the point is
    inside [0, 31]^2 (outside, mode 'constant' gives cval 0). Taps in scipy's order: row tap
    outer, column tap inner; indices mirrored at the edges."""
    def axis(cc):
        start = torch.floor(cc).long() - 1
        return _mirror(start[None] + torch.arange(4)[:, None]), torch.stack(_spline_weights(cc)), (cc >= 0) & (cc <= S - 1)

    (ri, rw, rv), (ci, cw, cv) = axis(rows.reshape(-1)), axis(cols.reshape(-1))
    index = (ri[:, None] * S + ci[None, :]).reshape(16, -1)
    wr, wc = rw[:, None].expand(4, 4, -1).reshape(16, -1), cw[None, :].expand(4, 4, -1).reshape(16, -1)
    return tuple(t.contiguous().to(device) for t in (index, wr, wc, rv & cv))


def _pixels_first(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 32, 32) -> (1024, N * C): a tap's gather then reads whole contiguous rows (several
    times faster on the CPU than gathering along the last dimension)."""
    return x.reshape(-1, S * S).T.contiguous()


def _images_first(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.T.reshape(like.shape)


def _interpolate(coeffs: torch.Tensor, taps: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """scipy's sum over the 16 taps of (coefficient * row weight) * column weight, added in its
    order from 0, zero outside: coefficients (1024, M) pixels first -> values (P, M)."""
    index, wr, wc, valid = taps
    t = torch.zeros(index.shape[1], coeffs.shape[1], dtype=coeffs.dtype, device=coeffs.device)
    for k in range(16):
        term = coeffs.index_select(0, index[k])
        term *= wr[k, :, None]
        term *= wc[k, :, None]
        t += term
    return t.masked_fill_(~valid[:, None], 0.0)


@functools.lru_cache(maxsize=None)
def _prefilter_matrix(device: str) -> torch.Tensor:
    """The order-3 spline prefilter with mirror boundaries (scipy's spline_filter1d) as a matrix:
    the inverse of sampling a cubic B-spline, [1, 4, 1] / 6 with mirrored ends."""
    b = torch.zeros(S, S, dtype=F64)
    for i in range(S):
        for j, w in ((i - 1, 1 / 6), (i, 4 / 6), (i + 1, 1 / 6)):
            b[i, int(_mirror(torch.tensor(j)))] += w
    return torch.linalg.inv(b).to(device)


@functools.lru_cache(maxsize=None)
def _rotation_taps(angle: float, device: str):
    """scipy.ndimage.rotate(reshape=False)'s input coordinates for a 32 x 32 plane, as taps."""
    rad = angle * (math.pi / 180.0)
    c, s = math.cos(rad), math.sin(rad)
    centre = (S - 1) / 2
    offset = (centre - (c * centre + s * centre), centre - (-s * centre + c * centre))
    o0, o1 = _pixel_grid("cpu")
    return _taps(o0 * c + o1 * s + offset[0], o0 * -s + o1 * c + offset[1], device)


@_register("circular_motion_blur", "21 rotations of up to +-amount degrees, Gaussian-weighted",
           lambda n, m, source, device: {})
def circular_motion_blur(images: torch.Tensor, m: float) -> torch.Tensor:
    """The generator's float32 pipeline: x / 255 in float32, each rotation (scipy rotate: order-3
    spline, prefiltered, mode 'constant') stored as float32, summed with float32 weights in order,
    divided by the weights' sum, times 255, truncated."""
    amount = float_parameter(m, 15)
    num = 21
    x = images.to(torch.float32) / torch.tensor(255.0, device=images.device)
    p = _prefilter_matrix(str(images.device))
    coeffs = _pixels_first(p @ x.to(F64) @ p.T)
    factors = [math.exp(-2 * (2 * i / (num - 1) - 1) ** 2) for i in range(num)]
    out = torch.zeros(coeffs.shape, dtype=torch.float32, device=images.device)
    for i, f in enumerate(factors):
        taps = _rotation_taps((2 * i / (num - 1) - 1) * amount, str(images.device))
        out += torch.tensor(f, dtype=torch.float32, device=images.device) * _interpolate(coeffs, taps).to(torch.float32)
    out /= torch.tensor(sum(factors), dtype=torch.float32, device=images.device)
    return _finish(_images_first(out, images) * 255)


@functools.lru_cache(maxsize=None)
def _zoom_taps(scale: float, device: str):
    """scipy.ndimage.zoom(plane, scale, order=3, prefilter=False) cropped to the centre 32 x 32 as
    the generator crops it: output side round(32 * scale), input coordinate k * 31 / (side - 1)."""
    side = int(round(S * scale))
    edge = (side - S) // 2
    cc = torch.arange(edge, edge + S, dtype=F64) * exact_div(torch.tensor(S - 1.0, dtype=F64), side - 1)
    return _taps(cc[:, None].expand(S, S), cc[None, :].expand(S, S), device)


def _sample_tca(n, m, source, device):
    return {"order": torch.argsort(draws.rand(source, (n, 3), device=device), dim=1)}


@_register("transverse_chromatic_abberation", "channels zoomed by 1, 1+s/2, 1+s in random order", _sample_tca)
def transverse_chromatic_abberation(images: torch.Tensor, m: float, order: torch.Tensor) -> torch.Tensor:
    """Channel c zoomed by base[order[c]] (scipy zoom without prefilter: a smoothing spline even at
    scale 1, uint8 output rounded half up), centre-cropped."""
    s = float_parameter(m, 0.5)
    base = (1.0, 1.0 + s / 2, 1.0 + s)
    out = torch.empty_like(images)
    x = _pixels_first(images.to(F64))
    for k, scale in enumerate(base):
        t = _images_first(_interpolate(x, _zoom_taps(scale, str(images.device))), images)
        zoomed = torch.where(t > 0, t + 0.5, torch.zeros_like(t)).clamp(max=255).trunc().to(torch.uint8)
        chosen = (order == k)[:, :, None, None]
        out = torch.where(chosen, zoomed, out)
    return out


# ---------------------------------------------------------------------------------------------
# sparkles, inverse_sparkles


def _star(value: torch.Tensor, centre: torch.Tensor, lengths: torch.Tensor, rays: torch.Tensor,
          exponent: float) -> torch.Tensor:
    """The generator's star kernel's f (clipped to [0, 1]) for every pixel: the ray length
    interpolated at the pixel's angle, (length^2 / (dist^2 + 1e-4))^exponent times 1 - (frac - 0.5)^2.
    centre (N, 2) as (row, col); lengths (N, R); rays (N,)."""
    y, x = _pixel_grid(value.device)
    dy, dx = y - centre[:, 0, None, None], x - centre[:, 1, None, None]
    dist = torch.sqrt(dy * dy + dx * dx)
    d = exact_div(torch.atan2(dx, dy) + math.pi, 2 * math.pi) * rays[:, None, None]
    i = d.trunc()
    f = d - i
    i = i.long()
    n = value.shape[0]
    r = rays[:, None, None].long()
    l0 = lengths.gather(1, (i % r).reshape(n, -1)).reshape(n, S, S)
    l1 = lengths.gather(1, ((i + 1) % r).reshape(n, -1)).reshape(n, S, S)
    length = l0 + f * (l1 - l0)
    g = length**2 / (dist**2 + 1e-4)
    if exponent != 1.0:
        g = g**exponent
    f = f - 0.5
    return ((1 - f**2) * g).clamp(0, 1)


def _sample_sparkles(n, m, source, device):
    centres = _uniform(source, (n, 5, 2), 0.0, S, device)
    rays = 50 + draws.randint(source, 150, (n, 5), device=device)
    return {"centers": centres, "rays": rays, "normals": draws.randn(source, (n, 5, MAX_RAYS), device=device, dtype=F64)}


@_register("sparkles", "five white star bursts", _sample_sparkles)
def sparkles(images: torch.Tensor, m: float, centers: torch.Tensor, rays: torch.Tensor,
             normals: torch.Tensor) -> torch.Tensor:
    """Five stars blended towards white in turn; the image passes through float32 between stars
    (the generator's `.astype(np.float32)` per pixel), ray lengths at least 1."""
    radius = float_parameter(m, 0.1) * S
    lengths = (radius + 25 / 100.0 * radius * normals).clamp(min=1)
    value = images.to(F64)
    for k in range(5):
        value = value.to(torch.float32).to(F64)
        f = _star(value, centers[:, k], lengths[:, k], rays[:, k], 1.0)[:, None]
        value = value + f * (255 - value)
    return _finish(value)


def _sample_inverse_sparkles(n, m, source, device):
    centre = _uniform(source, (n, 2), 0.25, 0.75, device) * S
    rays = 50 + draws.randint(source, 150, (n,), device=device)
    return {"center": centre, "rays": rays, "normals": draws.randn(source, (n, MAX_RAYS), device=device, dtype=F64)}


@_register("inverse_sparkles", "the image seen through one star burst on white", _sample_inverse_sparkles)
def inverse_sparkles(images: torch.Tensor, m: float, center: torch.Tensor, rays: torch.Tensor,
                     normals: torch.Tensor) -> torch.Tensor:
    radius = 0.25 * S
    amount = 100 - float_parameter(m, 65)
    lengths = radius + 25 / 100.0 * radius * normals  # no floor at 1 here (the generator's own asymmetry)
    f = _star(images, center, lengths, rays, (100 - amount) / 50.0)[:, None]
    return _finish(255 + f * (images.to(F64) - 255))


# ---------------------------------------------------------------------------------------------
# lines


def _line_aa(r0, c0, r1, c1):
    """scikit-image 0.16's line_aa (Zingl's anti-aliased Bresenham) for a batch of lines, in
    lockstep: (rows, cols, values, emitted) of shape (L, 3 * steps), in the generator's order."""
    dc, dr = (c0 - c1).abs(), (r0 - r1).abs()
    sign_c = torch.where(c0 < c1, 1, -1)
    sign_r = torch.where(r0 < r1, 1, -1)
    ed = torch.where(dc + dr == 0, torch.ones_like(dc, dtype=F64),
                     torch.sqrt((dc * dc + dr * dr).to(F64)).to(torch.float32).to(F64))  # a C float
    err = dc - dr
    c, r = c0.clone(), r0.clone()
    live = torch.ones_like(c0, dtype=torch.bool)
    rows, cols, vals, emitted = [], [], [], []

    def emit(rr, cc, numerator, when):
        rows.append(rr)
        cols.append(cc)
        vals.append(1.0 - numerator.abs().to(F64) / ed)
        emitted.append(when)

    while bool(live.any()):
        emit(r, c, err - dc + dr, live.clone())
        e, c_prime = err.clone(), c.clone()
        step_c = live & (2 * e >= -dc)
        live = live & ~(step_c & (c == c1))
        step_c = step_c & live
        emit(r + sign_r, c, e + dr, step_c & ((e + dr).to(F64) < ed))
        err = torch.where(step_c, err - dr, err)
        c = torch.where(step_c, c + sign_c, c)
        step_r = live & (2 * e <= dr)
        live = live & ~(step_r & (r == r1))
        step_r = step_r & live
        emit(r, c_prime + sign_c, dc - e, step_r & ((dc - e).to(F64) < ed))
        err = torch.where(step_r, err + dc, err)
        r = torch.where(step_r, r + sign_r, r)
    return torch.stack(rows, 1), torch.stack(cols, 1), torch.stack(vals, 1), torch.stack(emitted, 1)


def _sample_lines(n, m, source, device):
    return {"angle": _uniform(source, (n,), 0.0, 2 * math.pi, device),
            "variation": _uniform(source, (n,), 0.1, 1.0, device),
            "uniforms": draws.rand(source, (n, MAX_LINES, 3), device=device, dtype=F64)}


@_register("lines", "grey anti-aliased lines across the image", _sample_lines)
def lines(images: torch.Tensor, m: float, angle: torch.Tensor, variation: torch.Tensor,
          uniforms: torch.Tensor) -> torch.Tensor:
    """Each line's pixels blended towards 128 by its anti-aliasing value and truncated to uint8,
    one line after the other; within a line the last value drawn at a pixel wins (NumPy's
    fancy assignment)."""
    num_lines = int(float_parameter(m, 1.0) * S)
    if num_lines > MAX_LINES:
        raise ValueError(f"lines: {num_lines} lines at magnitude {m}, more than the {MAX_LINES} sampled")
    length = 1.0 * S
    n = images.shape[0]
    out = images.clone()
    for k in range(num_lines):
        x, y = S * uniforms[:, k, 0], S * uniforms[:, k, 1]
        a = angle + 2 * math.pi * variation * (uniforms[:, k, 2] - 0.5)
        s, c = torch.sin(a) * length, torch.cos(a) * length
        rr, cc, val, emitted = _line_aa((x - c).trunc().long(), (y - s).trunc().long(),
                                        (x + c).trunc().long(), (y + s).trunc().long())
        emitted = emitted & (rr >= 0) & (cc >= 0) & (rr < S) & (cc < S)
        pixel = torch.where(emitted, rr * S + cc, 0)
        order = torch.arange(rr.shape[1], device=images.device).expand_as(rr)
        last = torch.full((n, S * S), -1, dtype=torch.long, device=images.device)
        last.scatter_reduce_(1, pixel, torch.where(emitted, order, -1), reduce="amax")
        drawn = last >= 0
        alpha = val.gather(1, last.clamp(min=0))
        alpha = torch.where(drawn, alpha, 0.0).reshape(n, 1, S, S)
        blended = ((1.0 - alpha) * out.to(F64) + alpha * 128).trunc().to(torch.uint8)
        out = torch.where(drawn.reshape(n, 1, S, S), blended, out)
    return out


# ---------------------------------------------------------------------------------------------
# pinch_and_twirl, ripple: warps sampled bilinearly


def _bilinear(image: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The generator's bilinear_interpolation at (p0, p1) (N, H, W), zero outside the image. The
    weights are computed in float64 and the sums in `dtype` (float32 where the generator's image is
    float32: NumPy multiplies a float32 array by a float64 scalar in float32)."""
    n = image.shape[0]
    lo0, lo1 = torch.floor(p0), torch.floor(p1)
    l, u = lo0.long(), lo1.long()
    flat = image.to(dtype).flatten(-2)

    def at(i, j):
        inside = (i >= 0) & (i < S) & (j >= 0) & (j < S)
        index = (i.clamp(0, S - 1) * S + j.clamp(0, S - 1)).reshape(n, 1, -1).expand(-1, image.shape[1], -1)
        v = flat.gather(2, index).reshape(image.shape[:2] + p0.shape[1:])
        return torch.where(inside[:, None], v, torch.zeros((), dtype=dtype, device=image.device))

    w_u = ((1.0 - p1) + lo1).to(dtype)[:, None]
    w_d = ((1.0 - (lo1 + 1)) + p1).to(dtype)[:, None]
    w_l = ((1.0 - p0) + lo0).to(dtype)[:, None]
    w_r = ((1.0 - (lo0 + 1)) + p0).to(dtype)[:, None]
    al = at(l, u) * w_u + at(l, u + 1) * w_d
    ar = at(l + 1, u) * w_u + at(l + 1, u + 1) * w_d
    return al * w_l + ar * w_r


def _sample_pinch(n, m, source, device):
    return {"signs": 1 - 2 * draws.randint(source, 2, (n, 3, 3), device=device)}


@_register("pinch_and_twirl", "a 3 x 3 grid of local pinch-and-twirl warps", _sample_pinch)
def pinch_and_twirl(images: torch.Tensor, m: float, signs: torch.Tensor) -> torch.Tensor:
    """Cells of 10 px (32 // 3) in the top-left 30 x 30; the 2-px right and bottom borders stay.
    signs[i, j]: the twirl direction of the cell in column i, row j. Every sample point stays in
    its cell's disc, so reading the untouched image equals the generator's cell-by-cell update."""
    per_axis, angle = 3, float_parameter(m, math.pi / 2)
    amount = float_parameter(m, 0.4) + 0.1
    grid = S // per_axis
    radius = grid / 2
    y, x = _pixel_grid(images.device)
    cy, cx = (y // grid) * grid + radius, (x // grid) * grid + radius
    dy, dx = y - cy, x - cx
    dist = torch.sqrt(dy * dy + dx * dx)
    warp = (dist <= radius) & (torch.round(dist * 1000) != 0) & (y < per_axis * grid) & (x < per_axis * grid)
    d = exact_div(dist, radius)
    t = torch.sin(math.pi * 0.5 * d) ** (-amount)
    cell_i, cell_j = (x // grid).clamp(max=per_axis - 1).long(), (y // grid).clamp(max=per_axis - 1).long()
    twirl = signs.to(F64)[:, cell_i, cell_j] * angle * (1 - d) ** 2  # (N, 32, 32)
    sdy, sdx = dy * t, dx * t
    p0 = torch.where(warp, cy + (sdy * torch.cos(twirl) - sdx * torch.sin(twirl)), y)
    p1 = torch.where(warp, cx + (sdy * torch.sin(twirl) + sdx * torch.cos(twirl)), x)
    out = _bilinear(images, p0, p1, torch.float32)
    return _finish(out)


def _sample_ripple(n, m, source, device):
    return {"wavelengths": _uniform(source, (n, 2), 0.1, 0.3, device) * S,
            "phases": _uniform(source, (n, 2), 0.0, 2 * math.pi, device)}


@_register("ripple", "sinusoidal displacement of rows and columns", _sample_ripple)
def ripple(images: torch.Tensor, m: float, wavelengths: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
    """Each coordinate moved by A sin(2 pi coordinate / wavelength + phase), sampled bilinearly
    in float64 with black outside the image (so the edges darken where they move out)."""
    amplitude = float_parameter(m, 0.025) * S
    y, x = _pixel_grid(images.device)
    wl, ph = wavelengths[:, :, None, None], phases[:, :, None, None]
    p0 = y + amplitude * torch.sin(2 * math.pi * y / wl[:, 0] + ph[:, 0])
    p1 = x + amplitude * torch.sin(2 * math.pi * x / wl[:, 1] + ph[:, 1])
    return _finish(_bilinear(images, p0, p1, F64))


# ---------------------------------------------------------------------------------------------
# Entry points


def get_bar(name: str) -> Entry:
    """The registry entry of a C-bar corruption (`.factory` has `sample` and `apply`)."""
    return BAR.get(name)


def _check_images(images: torch.Tensor, who: str) -> None:
    if tuple(images.shape[-2:]) != (S, S) or images.shape[-3] != 3:
        raise RobenchError(f"{who}: CIFAR-10-C-bar is defined for 3 x {S} x {S} images, got "
                           f"{tuple(images.shape[-3:])}; resize the images to {S} x {S}")


def apply_bar(images: torch.Tensor, name: str, severity: int, params: dict) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) corrupted with explicit parameters (as `sample` gives them); on the
    CPU in pieces of CPU_PIECE images."""
    entry = BAR.get(name).factory
    m = magnitude(name, check_severity(severity))
    if images.device.type == "cpu" and images.shape[0] > CPU_PIECE:
        parts = [entry.apply(images[i:i + CPU_PIECE], m, **{k: v[i:i + CPU_PIECE] for k, v in params.items()})
                 for i in range(0, images.shape[0], CPU_PIECE)]
        return torch.cat(parts)
    out = entry.apply(images, m, **params)
    assert out.dtype == torch.uint8 and out.shape == images.shape, name
    return out


def sample_bar(name: str, severity: int, n: int, source: draws.Source, device) -> dict:
    """The random parameters of n images (draws.Source: one generator, or one per chunk)."""
    return BAR.get(name).factory.sample(n, magnitude(name, check_severity(severity)), source, device)


def corrupt_bar(images: torch.Tensor, name: str, severity: int, seed: int | None = None, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Corrupt 32 x 32 images with a CIFAR-10-C-bar corruption at severity 1..5, on their device.

    `images` follow robench.images' conventions (uint8 or float in [0, 1], a batch or one image;
    the result has the input's convention). Each image draws its own parameters from `generator`,
    or from a new one seeded with `seed` (0 when neither is given)."""
    batch = as_batch(images, "corrupt_bar()")
    check_severity(severity)
    BAR.get(name)
    _check_images(batch.images, "corrupt_bar()")
    if generator is None and seed is None:
        seed = 0
    generator = generator_for(batch.images.device, generator, seed, "corrupt_bar()")
    x = batch.images
    if x.shape[0] == 0:
        return batch.restore(x.clone())
    return batch.restore(apply_bar(x, name, severity, sample_bar(name, severity, x.shape[0], generator, x.device)))


def corrupt_bar_chunks(images: torch.Tensor, name: str, severity: int, seeds: Sequence[int],
                       chunk: int = CHUNK) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) cut into consecutive chunks of `chunk` images, chunk k drawn from seed
    `seeds[k]`: equal to corrupt_bar() per chunk, concatenated (each chunk's draws come from its own
    generator, draws.Streams), in one call however many chunks there are."""
    check_severity(severity)
    _check_images(images, "corrupt_bar_chunks()")
    sizes = [p.shape[0] for p in images.split(chunk)]
    if len(seeds) != len(sizes):
        raise ValueError(f"{len(sizes)} chunks of {chunk} images but {len(seeds)} seeds")
    generators = [generator_for(images.device, None, s, "corrupt_bar_chunks()") for s in seeds]
    source = generators[0] if len(generators) == 1 else draws.Streams(generators, sizes)
    return apply_bar(images, name, severity, sample_bar(name, severity, images.shape[0], source, images.device))


def generated_bar_batches(images: torch.Tensor, corruption: str, severity: int, seed: int, batch_size: int,
                          offset: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, corrupted batch) over uint8 `images`, chunk k (of CHUNK images, counted from global
    index `offset`, a multiple of CHUNK) seeded with cbar_protocol.chunk_seed(seed, corruption,
    severity, k): the -C contract of registry.generated_batches, for C-bar."""
    if offset % CHUNK:
        raise ValueError(f"offset {offset} is not a multiple of the chunk size {CHUNK}")
    batch_size = max(CHUNK, batch_size // CHUNK * CHUNK)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        seeds = [chunk_seed(seed, corruption, severity, (offset + c) // CHUNK)
                 for c in range(start, start + batch.shape[0], CHUNK)]
        yield start, corrupt_bar_chunks(batch, corruption, severity, seeds, CHUNK)


def check_registry() -> None:
    """Every C-bar name has a function and no function lacks a name (a test calls this)."""
    if tuple(BAR) != CBAR_CORRUPTIONS:
        raise AssertionError(f"registered C-bar corruptions {tuple(BAR)} differ from the table's {CBAR_CORRUPTIONS}")
