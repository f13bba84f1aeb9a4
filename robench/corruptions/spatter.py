"""spatter (extra corruption): water drops (severity 1-3) or mud (4-5), batched.

Both branches start from a liquid layer `L = gaussian(normal(mean, std, (H, W)), sigma)` (mode
'nearest', float64) with `L[L < threshold] = 0`, one per image.

Water, as the generator does it with OpenCV on that layer:
  L8 = uint8(L * 255)          (truncation; values >= 256 wrap modulo 256, as NumPy's cast does)
  edges = Canny(L8, 50, 150)   (3x3 Sobel with replicated borders, L1 magnitude, OpenCV's
                                fixed-point non-maximum suppression, 8-connected hysteresis)
  d = distanceTransform(255 - edges, DIST_L2, 5)   (the 5x5 chamfer mask 1 / 1.4 / 2.1969,
                                two raster passes, float32 sums as the OpenCV wheels' IPP path)
  d = uint8(blur3x3(min(d, 20)))        (float box filter, truncated)
  d = blur3x3(filter2D(equalizeHist(d), emboss))   (uint8, rounded and saturated)
  m = L8 * d / max(L8 * d) * 0.5   (NaN when the layer is empty: the generator's output is then 0)
  out = clip(x + m * (175, 238, 238) / 255, 0, 1) * 255 in float32 (the "BGR" colour lands on RGB)
Every step is reproduced exactly (integer arithmetic where OpenCV uses it); during development
all of them matched OpenCV 4.10 bit for bit on thousands of layers.

Mud: `m = gaussian(float(L > threshold), 0.6)` (float64, 'nearest'), `m[m < 0.8] = 0`,
`out = clip(x * (1 - m) + m * (63, 42, 20) / 255, 0, 1) * 255` in float32.

Parameters: one table per protocol (`SPATTER`, read with protocol.pick). The four generators run
the same code with their own tables, whose sigmas are in pixels of their image size (the 3x3
kernels and the distance cap of 20 px are the same at 32, 64, 224 and 299 px).

Protocol "scaled" (robench's own, any size): CIFAR's table with the Gaussian sigmas (in pixels)
scaled by min(H, W) / 32, and the layer's noise amplitude with them so that the blurred layer keeps
its spread (else larger images would get almost no drops, and an empty water layer blackens the
image); the 3x3 kernels and the distance cap stay as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robench.corruptions import draws
from robench.corruptions._ops import exact_div, gaussian_filter_2d, gaussian_kernel1d
from robench.corruptions.protocol import pick
from robench.corruptions.registry import FUNCTIONS

# (mean, std, sigma, threshold, intensity, mud) per severity, per generator (make_cifar_c.py,
# make_tinyimagenet_c.py, make_imagenet_c.py, make_imagenet_c_inception.py). For mud, `intensity` is the sigma of the mask's blur.
SPATTER = {
    "cifar10-c": (
        (0.62, 0.1, 0.7, 0.7, 0.5, False),
        (0.65, 0.1, 0.8, 0.7, 0.5, False),
        (0.65, 0.3, 1.0, 0.69, 0.5, False),
        (0.65, 0.1, 0.7, 0.69, 0.6, True),
        (0.65, 0.1, 0.5, 0.68, 0.6, True),
    ),
    "tiny-imagenet-c": (
        (0.62, 0.1, 0.7, 0.7, 0.6, False),
        (0.65, 0.1, 0.8, 0.7, 0.6, False),
        (0.65, 0.3, 1.0, 0.69, 0.6, False),
        (0.65, 0.1, 0.7, 0.68, 0.6, True),
        (0.65, 0.1, 0.5, 0.67, 0.6, True),
    ),
    "imagenet-c": (
        (0.65, 0.3, 4.0, 0.69, 0.6, False),
        (0.65, 0.3, 3.0, 0.68, 0.6, False),
        (0.65, 0.3, 2.0, 0.68, 0.5, False),
        (0.65, 0.3, 1.0, 0.65, 1.5, True),
        (0.67, 0.4, 1.0, 0.65, 1.5, True),
    ),
    "imagenet-c-299": (
        (0.65, 0.3, 4.0, 0.69, 0.9, False),
        (0.65, 0.3, 3.5, 0.68, 0.9, False),
        (0.65, 0.3, 3.0, 0.68, 0.8, False),
        (0.65, 0.3, 1.2, 0.65, 1.8, True),
        (0.67, 0.4, 1.2, 0.65, 1.8, True),
    ),
}
WATER = (175 / 255.0, 238 / 255.0, 238 / 255.0)
MUD = (63 / 255.0, 42 / 255.0, 20 / 255.0)


# ---- Canny -------------------------------------------------------------------------------------

CANNY_SHIFT = 15
TG22 = int(0.4142135623730950488016887242097 * (1 << CANNY_SHIFT) + 0.5)  # tan(22.5 deg), fixed point


_HYSTERESIS_CHECK_EVERY = 8  # growth steps between convergence checks off the CPU


def _host(t: torch.Tensor) -> bool:
    return t.device.type == "cpu"  # (tests patch this to take the other devices' path on the CPU)


def canny(image: torch.Tensor, low: int = 50, high: int = 150) -> torch.Tensor:
    """cv2.Canny(image, low, high) (aperture 3, L1 gradient) for integer (n, H, W) -> bool edges."""
    n, h, w = image.shape
    p = _pad1(image.to(torch.int32), 0)  # Sobel borders: replicated
    smooth_v = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]  # (n, H, W + 2): [1 2 1] down the rows
    smooth_h = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]  # (n, H + 2, W)
    dx = smooth_v[:, :, 2:] - smooth_v[:, :, :-2]
    dy = smooth_h[:, 2:] - smooth_h[:, :-2]
    ax, ay = dx.abs(), dy.abs()
    mag = ax + ay
    mp = F.pad(mag, (1, 1, 1, 1))  # neighbour magnitudes; outside the image they count as 0

    def at(di: int, dj: int) -> torch.Tensor:
        return mp[:, 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]

    # Direction sectors in OpenCV's fixed point: |dy| < tan(22.5)|dx| is a horizontal gradient
    # (compare left/right), |dy| > tan(67.5)|dx| a vertical one (above/below), else diagonal, the
    # diagonal's orientation from the signs of dx and dy. Ties: strict on one side, as OpenCV.
    ay = ay << CANNY_SHIFT
    tg22x = ax * TG22
    horizontal = ay < tg22x
    vertical = ay > tg22x + (ax << (CANNY_SHIFT + 1))
    diagonal = ~(horizontal | vertical)
    same_sign = (dx ^ dy) >= 0
    keep = horizontal & (mag > at(0, -1)) & (mag >= at(0, 1))
    keep |= vertical & (mag > at(-1, 0)) & (mag >= at(1, 0))
    keep |= diagonal & same_sign & (mag > at(-1, -1)) & (mag > at(1, 1))
    keep |= diagonal & ~same_sign & (mag > at(-1, 1)) & (mag > at(1, -1))
    candidate = keep & (mag > low)
    edges = candidate & (mag > high)
    # Hysteresis: grow the strong edges through 8-connected candidates until nothing changes.
    # Growing past that point changes nothing, so off the CPU the check (a read back from the
    # device) is made every 8 steps only.
    every = 1 if _host(edges) else _HYSTERESIS_CHECK_EVERY
    for _ in range(0, h * w, every):
        grown = edges
        for _ in range(every):
            grown = _dilate3(grown) & candidate
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges


def _dilate3(mask: torch.Tensor) -> torch.Tensor:
    """3x3 binary dilation of bool (n, H, W) (outside counts as False)."""
    p = F.pad(mask, (1, 1, 1, 1))
    rows = p[:, :-2] | p[:, 1:-1] | p[:, 2:]
    return rows[:, :, :-2] | rows[:, :, 1:-1] | rows[:, :, 2:]


# ---- distance transform ------------------------------------------------------------------------

# OpenCV's DIST_L2 5x5 mask weights: axial, diagonal, knight's move. cv2.distanceTransform (the
# IPP path of the wheels) accumulates them in float32 along its two raster passes.
HV, DIAG, LONG = (torch.tensor(v, dtype=torch.float32) for v in (1.0, 1.4, 2.1969))
FAR = 1e6  # "no edge yet"


def _pass_row(two: torch.Tensor, one: torch.Tensor) -> torch.Tensor:
    """The mask terms from the two previous rows of a pass (padded by 2 columns of FAR), float32:
    knight's moves from two rows away and from the next row, diagonals and the axial step."""
    cand = torch.minimum(torch.minimum(two[:, 1:-3], two[:, 3:-1]) + LONG, torch.minimum(one[:, :-4], one[:, 4:]) + LONG)
    cand = torch.minimum(cand, torch.minimum(one[:, 1:-3], one[:, 3:-1]) + DIAG)
    return torch.minimum(cand, one[:, 2:-2] + HV)


def _run_along(cand: torch.Tensor, ramp: torch.Tensor) -> torch.Tensor:
    """row[j] = min(cand[j], row[j-1] + 1) for a whole row at once: the running minimum of
    cand[k] + (j - k), as a cumulative minimum in float64 (exact) rounded once to float32, which is
    what the sequential float32 additions of 1.0 give here (checked against OpenCV)."""
    c = cand.to(torch.float64)
    return ((c - ramp).cummin(1).values + ramp).to(torch.float32)


def distance_transform(edges: torch.Tensor, cap: float = 20.0) -> torch.Tensor:
    """min(cv2.distanceTransform(255 - edges, DIST_L2, 5), cap) for bool edges (n, H, W), float32.

    OpenCV's two raster passes (forward: the mask's half above and to the left; backward: below and
    to the right), vectorised over the batch and along each row: the terms from the two rows above
    (below) come from rows already finished, and the left (right) neighbour term is a running
    minimum along the row."""
    n, h, w = edges.shape
    far = torch.full((n, w + 4), FAR, dtype=torch.float32, device=edges.device)
    ramp = torch.arange(w, device=edges.device, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float32, device=edges.device)
    forward: list[torch.Tensor] = []
    two, one = far, far
    for i in range(h):
        cand = torch.where(edges[:, i], zero, _pass_row(two, one))
        row = _run_along(cand, ramp).clamp_(max=FAR)
        forward.append(row)
        two, one = one, F.pad(row, (2, 2), value=FAR)
    rows = [None] * h
    two, one = far, far
    for i in range(h - 1, -1, -1):
        cand = torch.minimum(_pass_row(two, one), forward[i])
        row = _run_along(cand.flip(1), ramp).flip(1).clamp_(max=FAR)
        rows[i] = row
        two, one = one, F.pad(row, (2, 2), value=FAR)
    return torch.stack(rows, 1).clamp_(max=cap)


# ---- small OpenCV filters on uint8-valued integer images ----------------------------------------


def _pad1(x: torch.Tensor, inner: int) -> torch.Tensor:
    """(n, H, W) padded by one pixel per side, copying the row/column `inner` steps inside the
    border: 0 replicates the edge (BORDER_REPLICATE), 1 is BORDER_REFLECT_101 (OpenCV's default).
    Slices rather than F.pad's modes, which not every device implements for integer tensors."""
    x = torch.cat([x[:, inner : inner + 1], x, x[:, x.shape[1] - 1 - inner : x.shape[1] - inner]], 1)
    return torch.cat([x[:, :, inner : inner + 1], x, x[:, :, x.shape[2] - 1 - inner : x.shape[2] - inner]], 2)


def _reflect101_pad(x: torch.Tensor) -> torch.Tensor:
    return _pad1(x, 1)


def _box3_sum(x: torch.Tensor) -> torch.Tensor:
    p = _reflect101_pad(x)
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image for integer (n, H, W) in 0..255 (int64 out).

    lut[v] = round(255 / (total - hist[first]) * sum(hist[first+1 .. v])) in float32 for v above
    the first occupied level `first` (which maps to 0); a single-level image is left as it is."""
    n, h, w = x.shape
    flat = x.reshape(n, -1)
    hist = torch.zeros((n, 256), dtype=torch.int64, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).to(torch.int8).argmax(1, keepdim=True)  # lowest occupied level
    first_count = hist.gather(1, first)
    levels = torch.arange(256, device=x.device)
    above = torch.where(levels > first, hist, 0).cumsum(1)  # sum over (first, v]
    # float32 255 / count as OpenCV's (a tensor numerator: `scalar / tensor` may be computed as
    # scalar * reciprocal, which rounds differently and moves some levels by one).
    count = (h * w - first_count).to(torch.float32)
    scale = torch.full_like(count, 255.0) / count
    lut = (above.to(torch.float32) * scale).round().clamp_(0, 255).to(torch.int64)
    lut = torch.where(levels > first, lut, 0)
    out = lut.gather(1, flat).view(n, h, w)
    return torch.where((first_count == h * w).view(n, 1, 1), x, out)


# Emboss kernel of the generator, applied as correlation (filter2D).
EMBOSS = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))


def _emboss(x: torch.Tensor) -> torch.Tensor:
    """cv2.filter2D(x, CV_8U, EMBOSS) with BORDER_REFLECT_101, saturated (sums are integers)."""
    n, h, w = x.shape
    p = _reflect101_pad(x)
    out = torch.zeros_like(x)
    for i, row in enumerate(EMBOSS):
        for j, k in enumerate(row):
            if k:
                out += k * p[:, i : i + h, j : j + w]
    return out.clamp_(0, 255)


# ---- the corruption ----------------------------------------------------------------------------


def _noise_gain(sigma: float) -> float:
    """Standard deviation of Gaussian-filtered unit white noise in 2-D: the sum of the squared 1-D
    weights (the 2-D kernel is their outer product)."""
    return float(sum(k * k for k in gaussian_kernel1d(sigma))) if sigma > 1e-15 else 1.0


def liquid_layer(noise: torch.Tensor, severity: int, scale: float = 1.0, protocol: str = "cifar10-c") -> torch.Tensor:
    """L = gaussian(mean + std * noise, sigma) with L < threshold set to 0; noise (n, H, W) ~ N(0, 1).

    At other sizes sigma is scaled, and so is the noise amplitude, by the factor that keeps the
    filtered layer's spread (a wider blur averages more noise away): the drops keep their frequency
    and grow with the image instead of vanishing (an empty water layer turns the image black)."""
    mean, std, sigma, threshold, _, _ = pick(SPATTER, protocol, severity)
    if scale != 1:
        std, sigma = std * _noise_gain(sigma) / _noise_gain(sigma * scale), sigma * scale
    layer = gaussian_filter_2d(mean + std * noise, sigma, "nearest")
    return torch.where(layer < threshold, 0.0, layer)


def water_mask(layer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L8, d): the layer as the generator's uint8 and the embossed distance map, both (n, H, W)."""
    l8 = (layer * 255).floor().to(torch.int64) % 256  # uint8 cast: truncate, wrap above 255
    dist = distance_transform(canny(l8))
    # Float box blur (OpenCV sums float32 in double: exact here), then NumPy's uint8 truncation.
    d = (_box3_sum(dist.to(torch.float64)) * (1 / 9)).to(torch.float32).to(torch.int64)
    d = _emboss(equalize_hist(d).to(torch.int32))
    d = torch.div(2 * _box3_sum(d) + 9, 18, rounding_mode="floor")  # uint8 blur: round(sum / 9)
    return l8, d


def apply(images: torch.Tensor, severity: int, noise: torch.Tensor, protocol: str = "cifar10-c") -> torch.Tensor:
    """The deterministic part, given the standard normal draws noise (n, H, W) float64."""
    n, _, h, w = images.shape
    # Official tables are in their own pixels; "scaled" (and direct calls at other sizes) scale CIFAR's.
    scale = min(h, w) / 32 if protocol in ("scaled", "cifar10-c") else 1.0
    _, _, _, threshold, intensity, mud = pick(SPATTER, protocol, severity)
    x = exact_div(images.to(torch.float32), 255)
    layer = liquid_layer(noise, severity, scale, protocol)
    if mud:
        m = gaussian_filter_2d((layer > threshold).to(torch.float64), intensity * scale, "nearest")
        m = torch.where(m < 0.8, 0.0, m)[:, None]  # (n, 1, H, W) float64
        colour = torch.tensor(MUD, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        # float32 arrays scaled by float64 factors, stored back as float32 (NumPy's in-place ops).
        out = (x * (1 - m)).to(torch.float32) + (colour * m).to(torch.float32)
    else:
        l8, d = water_mask(layer)
        m = (l8 * d).to(torch.float32)[:, None]  # exact integers
        peak = m.amax(dim=(2, 3), keepdim=True)
        m = m / peak * intensity  # 0/0 = NaN for an empty layer, as in the generator
        colour = torch.tensor(WATER, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        out = x.add_(m * colour)
        out = torch.where(peak > 0, out, 0.0)  # NaN there; np.uint8(NaN) is 0
    return out.clamp_(0, 1).mul_(255).floor_().to(torch.uint8)


@FUNCTIONS.register("spatter", "weather: water or mud splashes (extra)")
def spatter(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    n, _, h, w = images.shape
    # Standard normal draws in float32 (6x faster than float64 on CPU; the same distribution).
    noise = draws.randn(generator, (n, h, w), device=images.device).to(torch.float64)
    return apply(images, severity, noise, protocol)
