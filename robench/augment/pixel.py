"""Pixel ops: per-sample colour and tone changes (and cutout's erasing), which change values
but never move a pixel.

Kept apart from geometry.py because they are exact in another way: pixel ops are bit-exact.
torchvision blends in float32 with a fused multiply-add (`a.mul(r).add_(b, alpha=1 - r)`) and
truncates to uint8, so near-integer results depend on the last float32 bit. We emulate that
arithmetic in float64: every product of a uint8 value and a float32 factor is exact there, and one
rounding to float32 afterwards gives the fused result. Ops that depend on the pixel value only
(equalize, contrast) build a 256-entry table per image (and channel) and look every pixel up in
it; autocontrast evaluates torchvision's formula. (Conventions shared by all ops: common.py.)
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from . import common  # (common._host is looked up at call time: tests patch it there)
from .common import _as_float, _col, _exact_dtype, _param
from .workspace import thread_workspace

# ----------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=64)
def _constant(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 0-dim tensor on the device, made once (a fresh `torch.tensor` per call is a host-to-device
    copy each time on a GPU)."""
    with torch.inference_mode(False):
        return torch.tensor(value, dtype=dtype, device=device)


def _f32(v: float) -> float:
    """The float32 value nearest to v, as a Python float (what torch does to a scalar factor)."""
    return float(torch.tensor(v, dtype=torch.float32))


def _to_uint8(x: Tensor) -> Tensor:
    """Whole float values in [0, 255] as a new uint8 tensor (via int16: 2-3x faster on CPU)."""
    with thread_workspace().frame() as frame:
        return frame.empty(x.shape, torch.int16, x.device).copy_(x).to(torch.uint8)


# ----------------------------------------------------------------------------- pixel ops


def identity(x: Tensor, _=None) -> Tensor:
    return x


def invert(x: Tensor, _=None) -> Tensor:
    """F.invert."""
    return x.bitwise_not()


def posterize(x: Tensor, bits) -> Tensor:
    """F.posterize(img, bits): keep the `bits` high bits of every value (bits in 0..8)."""
    bits = _param(bits, x, torch.long)
    mask = ((255 << (8 - bits)) & 255).to(torch.uint8)
    return x & _col(mask)


def solarize(x: Tensor, threshold) -> Tensor:
    """F.solarize(img, threshold): invert values >= threshold. torchvision compares the uint8 value
    with the threshold cast to float32, i.e. v >= ceil(float32(threshold)); above 255 nothing changes."""
    t = _param(threshold, x).float().ceil().clamp(0, 256)
    # (broadcast comparisons are slow on CPU; a materialised threshold is not)
    hit = x >= _col(t.clamp(max=255).to(torch.uint8)).expand(x.shape).contiguous()
    flip = hit.view(torch.uint8).neg_()  # 255 where hit: v ^ 255 == 255 - v
    flip &= _col(torch.where(t < 256, 255, 0).to(torch.uint8))
    return x ^ flip


def _lut_index(x: Tensor, per_channel: bool = True) -> Tensor:
    """Flat int32 positions of x's values in a stacked table of 256 entries per image (and channel)."""
    n, c = x.shape[:2]
    rows = n * c if per_channel else n
    offsets = torch.arange(0, rows * 256, 256, dtype=torch.int32, device=x.device).view(rows, 1)
    return x.reshape(rows, -1).int().add_(offsets).view(-1)  # (in place: a broadcast add is 4x slower)


def _apply_lut(x: Tensor, lut: Tensor, index: Tensor | None = None) -> Tensor:
    """out[n, c] = lut[n, c][x[n, c]] for a (N, C, 256) uint8 table (C = 1: one table per image)."""
    if index is None:
        index = _lut_index(x, per_channel=lut.shape[1] > 1)
    return lut.reshape(-1).index_select(0, index).view(x.shape)


def autocontrast(x: Tensor, _=None) -> Tensor:
    """F.autocontrast: stretch each channel to [0, 255] (constant channels are left alone), with
    torchvision's float32 formula (v - lo) / ((hi - lo) * (1 / 255)), clamped and truncated."""
    lo = x.amin(dim=(-2, -1), keepdim=True).float()
    hi = x.amax(dim=(-2, -1), keepdim=True).float()
    flat = hi == lo
    inv_scale = torch.where(flat, 1.0, (hi - lo) * (1.0 / 255))
    lo = torch.where(flat, 0.0, lo)
    with thread_workspace().frame() as frame:
        return _to_uint8(_as_float(frame, x).sub_(lo).div_(inv_scale).clamp_(0, 255))


def equalize(x: Tensor, _=None) -> Tensor:
    """F.equalize: PIL's histogram equalisation, per image and channel.

    PIL's lookup table: step = (pixels - count of the highest occupied value) // 255; when step is
    0 the channel is unchanged; otherwise lut[v] = (step // 2 + #pixels below v) // step, clipped.
    """
    n, c, h, w = x.shape
    index = _lut_index(x)  # also the histogram bins, one range of 256 per image and channel
    if common._host(x):  # bincount is the fastest CPU histogram (elsewhere it syncs)
        hist = torch.bincount(index, minlength=n * c * 256)
    else:  # scatter_add avoids bincount's device sync
        hist = torch.zeros(n * c * 256, dtype=torch.long, device=x.device)
        hist.scatter_add_(0, index.long(), hist.new_ones(1).expand(index.shape))
    # The table arithmetic runs in float32, exact for these integers (floor((a + s // 2) / s) with
    # a below 2**24 pixels), on (N * C, 256) entries; the count of the highest occupied value is
    # read at the channel max.
    hist = hist.view(n * c, 256)
    top_count = hist.gather(1, x.amax(dim=(-2, -1)).view(n * c, 1).long())
    step = torch.div(h * w - top_count, 255, rounding_mode="floor").float()
    hist = hist.float()
    lut = hist.cumsum(1).sub_(hist).add_(step.div(2).floor_()).div_(step.clamp(min=1)).floor_().clamp_(max=255)
    if not common._host(x) or bool((step == 0).any()):  # such channels are left unchanged
        lut = torch.where(step > 0, lut, torch.arange(256, dtype=torch.float32, device=x.device))
    return _apply_lut(x, lut.to(torch.uint8), index)


# torchvision's grayscale weights, as the float32 scalars torch multiplies with.
_GRAY = tuple(_f32(v) for v in (0.2989, 0.587, 0.114))


def _gray(x: Tensor) -> Tensor:
    """torchvision's floored luma of a uint8 image, float32 (N, 1, H, W).

    torchvision computes r*0.2989, then two fused multiply-adds, in float32; we round to float32
    after each step of an otherwise exact float64 computation, which is the same thing.
    """
    dt = _exact_dtype(x.device)
    r, g, b = x.unbind(1)
    luma = r.float().mul_(_GRAY[0]).to(dt)  # one float32 multiply: exactly torch's rounding
    luma = luma.addcmul_(g.to(dt), _constant(_GRAY[1], dt, x.device)).float().to(dt)
    luma = luma.addcmul_(b.to(dt), _constant(_GRAY[2], dt, x.device)).float()
    return luma.floor_().unsqueeze(1)


def _blend(x: Tensor, other: Tensor, ratio: Tensor) -> Tensor:
    """torchvision's `_blend`: float32 `x * r + other * (1 - r)` (fused), clamped, truncated.
    `other` broadcasts against x (a gray image (N, 1, H, W), a mean (N, 1, 1, 1), or values)."""
    dt = _exact_dtype(x.device)
    r = _col(ratio.float())
    a = _col((1.0 - ratio).float().to(dt))  # 1 - r is taken in double, then cast, like `alpha=`
    out = x.float().mul_(r).to(dt)  # float32 product, as torch rounds it
    out = out.addcmul_(other.to(dt), a).float()  # exact in float64, one rounding: the fused result
    return out.clamp_(0, 255).to(torch.uint8)


def brightness(x: Tensor, factor) -> Tensor:
    """F.adjust_brightness(img, factor): scale and clip."""
    f = _col(_param(factor, x).float())
    return x.float().mul_(f).clamp_(0, 255).to(torch.uint8)


def color(x: Tensor, factor) -> Tensor:
    """F.adjust_saturation(img, factor): blend with the grayscale image (PIL's ImageEnhance.Color)."""
    return _blend(x, _gray(x), _param(factor, x))


def contrast(x: Tensor, factor) -> Tensor:
    """F.adjust_contrast(img, factor): blend with the mean of the grayscale image.
    The blend depends on the pixel value only, so it is evaluated as a per-image lookup table."""
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    values = torch.arange(256, dtype=torch.uint8, device=x.device).expand(x.shape[0], 1, 1, 256)
    lut = _blend(values, mean, _param(factor, x))
    return _apply_lut(x, lut.view(-1, 1, 256))


def sharpness(x: Tensor, factor) -> Tensor:
    """F.adjust_sharpness(img, factor): blend the interior with a 3x3 smoothed image
    (weights 1, centre 5, over 13); the one-pixel border is kept.

    The smoothed value (sum + 4 * centre) / 13 is never within 1/26 of a .5, so torchvision's
    float32 convolution + round equals the integer (sum + 4 * centre + 6) // 13 we use.
    """
    h, w = x.shape[-2:]
    if h <= 2 or w <= 2:
        return x
    xi = x.to(torch.int16)
    rows = xi[..., :-2, :] + xi[..., 1:-1, :] + xi[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    centre = xi[..., 1:-1, 1:-1]
    box += 4 * centre + 6
    # (sum + 6) // 13 in float32: the quotient is never within 0.5/13 of an integer, so exact
    smooth = box.float().mul_(1 / 13).floor_()
    # torchvision: centre + (1 - factor) * (smooth - centre), one fused multiply-add in float32
    dt = _exact_dtype(x.device)
    a = _col((1.0 - _param(factor, x)).float().to(dt))
    inner = x[..., 1:-1, 1:-1].to(dt)
    inner = inner.addcmul_(smooth.sub_(centre).to(dt), a).float().clamp_(0, 255)
    out = x.clone()
    out[..., 1:-1, 1:-1] = inner
    return out


def cutout(x: Tensor, cy, cx, size: int = 16) -> Tensor:
    """Zero a size x size square centred at (cy, cx), clipped at the border (DeVries & Taylor:
    rows clip(cy - size//2, 0, H) to clip(cy + size//2, 0, H), likewise columns); equals
    F.erase(img, y1, x1, y2 - y1, x2 - x1, v=0)."""
    h, w = x.shape[-2:]
    cy, cx = _param(cy, x, torch.long).view(-1, 1, 1), _param(cx, x, torch.long).view(-1, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    half = size // 2
    hole = (rows >= cy - half) & (rows < cy + half) & (cols >= cx - half) & (cols < cx + half)
    return x.masked_fill(hole.unsqueeze(1), 0)
