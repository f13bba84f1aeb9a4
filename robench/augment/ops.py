"""Batched image ops with per-sample parameters, on uint8 (N, 3, H, W) tensors.

Every op takes a batch and one parameter per image (a tensor of shape (N,), or a number used for
all) and returns a uint8 batch of the same shape. Each op reproduces the torchvision function named
in its docstring (torchvision.transforms.v2.functional, called on one image with that image's
parameter):

* pixel ops are bit-exact. torchvision blends in float32 with a fused multiply-add
  (`a.mul(r).add_(b, alpha=1 - r)`) and truncates to uint8, so near-integer results depend on the
  last float32 bit. We emulate that arithmetic in float64: every product of a uint8 value and a
  float32 factor is exact there, and one rounding to float32 afterwards gives the fused result.
  Ops that depend on the pixel value only (equalize, contrast) build a 256-entry table per image
  (and channel) and look every pixel up in it; autocontrast evaluates torchvision's formula.
* affine ops (rotate, shear, translate, zoom) map every output pixel to a source position with a
  per-sample inverse matrix (see "resampling" below). Nearest sampling rounds half to even like
  grid_sample; our float32 positions can fall on the other side of an exact .5 than torchvision's
  differently computed float32 grid, so these are stated to agree on >= 99% of pixels (in
  practice all of them; whole-pixel shifts always). Bilinear results are rounded like
  torchvision's and may differ by 1 on rare pixels.

`run_slots` applies a different op to each image of a batch, slot after slot: each op runs once
on the images that drew it. Nothing loops over images in Python.

On CPU the large temporaries are buffers of this thread's workspace, reused from call to call
(see workspace.py): freshly allocated, they were returned to the OS and faulted in again on every
call, which cost more than the arithmetic. Each op takes them from a frame of its own, so they are
free again when it returns; a helper that returns such a buffer takes its caller's frame. The CPU
paths size their work from the data (group sizes, shift extents, distinct values); on other
devices the ops, run_slots included, take paths without device syncs (see `_host`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .workspace import Frame, thread_workspace

# ----------------------------------------------------------------------------- helpers


def _host(t: Tensor | torch.device) -> bool:
    """Whether t lives on the CPU, where device syncs are free: the CPU paths may size their work
    from the data (group sizes, shift extents, distinct values); other devices take sync-free
    paths. (Tests patch this to run the other paths on CPU.)"""
    return (t if isinstance(t, torch.device) else t.device).type == "cpu"


@functools.lru_cache(maxsize=64)
def _constant(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 0-dim tensor on the device, made once (a fresh `torch.tensor` per call is a host-to-device
    copy each time on a GPU)."""
    with torch.inference_mode(False):
        return torch.tensor(value, dtype=dtype, device=device)


def _as_float(frame: Frame, x: Tensor) -> Tensor:
    """x as float32, in a buffer of the caller's frame."""
    return frame.empty(x.shape, torch.float32, x.device).copy_(x)


def _exact_dtype(device: torch.device) -> torch.dtype:
    # float64 makes the float32-with-FMA emulation exact; MPS has no float64, so it gets float32
    # (results may then differ from torchvision by one level on rare pixels).
    return torch.float32 if device.type == "mps" else torch.float64


def _param(p, x: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """A per-sample parameter as a (N,) tensor on x's device (numbers are broadcast)."""
    if dtype == torch.float64:
        dtype = _exact_dtype(x.device)
    p = torch.as_tensor(p, device=x.device).to(dtype)
    return p.expand(x.shape[0]) if p.ndim == 0 else p.reshape(x.shape[0])


def _col(p: Tensor) -> Tensor:
    return p.view(-1, 1, 1, 1)


def _row_view(x: Tensor) -> Tensor:
    """A contiguous uint8 batch as (N, bytes per image) in the widest type dividing the row:
    whole images are then copied 16 bytes per element (index_copy_ is ~20x faster than on
    uint8; the elements are only moved, never computed with, so any bit pattern survives)."""
    flat = x.reshape(x.shape[0], -1)
    if flat.dtype == torch.uint8:
        for dtype in (torch.complex128, torch.int64, torch.int32, torch.int16):
            if flat.shape[1] % dtype.itemsize == 0:
                return flat.view(dtype)
    return flat


def take_rows(x: Tensor, index: Tensor) -> Tensor:
    """x[index] along dim 0, copied as whole rows."""
    return _row_view(x.contiguous()).index_select(0, index).view(x.dtype).view(-1, *x.shape[1:])


def put_rows(out: Tensor, index: Tensor, values: Tensor) -> None:
    """out[index] = values along dim 0, in place (out contiguous), copied as whole rows."""
    _row_view(out).index_copy_(0, index, _row_view(values.contiguous()))


def _f32(v: float) -> float:
    """The float32 value nearest to v, as a Python float (what torch does to a scalar factor)."""
    return float(torch.tensor(v, dtype=torch.float32))


# ----------------------------------------------------------------------------- pixel ops


def identity(x: Tensor, _=None) -> Tensor:
    return x


def invert(x: Tensor, _=None) -> Tensor:
    """F.invert."""
    return x.bitwise_not()


def hflip(x: Tensor, flip=True) -> Tensor:
    """F.horizontal_flip of the images whose `flip` is true (all by default)."""
    flip = _param(flip, x, torch.bool)
    out = x.clone()
    out[flip] = x[flip].flip(-1)
    return out


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
    if _host(x):  # bincount is the fastest CPU histogram (elsewhere it syncs)
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
    if not _host(x) or bool((step == 0).any()):  # such channels are left unchanged
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


# ----------------------------------------------------------------------------- resampling
#
# A matrix (N, 2, 3) maps output to input positions in pixel units centred on the image centre
# (pixel (i, j) sits at (j - (W-1)/2, i - (H-1)/2)): torchvision's inverse-affine convention, so
# its `_get_inverse_affine_matrix` values can be compared directly.
#
# General maps are resampled with grid_sample on the float image, as torchvision's F.affine and
# F.rotate do (align_corners=False, grid = source position * 2 / size), rounded half to even;
# policies draw few distinct maps (AugMix: whole degrees), so the grid of each distinct parameter
# is computed once (`_distinct`). Maps that move pixels along one axis only, [[1, a, b],
# [0, 1, 0]] (x: shears and shifts along x) and [[1, 0, 0], [a, 1, b]] (y), are resampled as
# runs: output row i is row i of the source moved by its own displacement d_i = a * y_i + b,
# copied with one index_select on an overlapping view of all runs of the zero-padded rows
# (`_runs`), several times faster than a gather; a fractional d blends two runs,
# v0 + f (v1 - v0) in float32, each step separately rounded. Along y, column j moves by
# d_j = a * x_j + b: every image is first moved by its smallest whole shift (runs of planes),
# then the few remaining row offsets are summed as shifted views weighted per column,
# (1 - f) v0 + f v1 (`_blend_columns`). `affine` always sends one-axis maps this way, so a shear
# gives the same result however it is called, and whole-pixel shifts are exact copies with
# either interpolation. Either way results are rounded half to even, and agree with
# torchvision's within 1 level on rare pixels.


@functools.lru_cache(maxsize=64)
def _centred(n: int, device: torch.device) -> Tensor:
    """Pixel coordinates 0..n-1 centred on the image centre, float32 (cached: never modify)."""
    with torch.inference_mode(False):  # (cached tensors are normal ones, see run_slots)
        return torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2


def _to_uint8(x: Tensor) -> Tensor:
    """Whole float values in [0, 255] as a new uint8 tensor (via int16: 2-3x faster on CPU)."""
    with thread_workspace().frame() as frame:
        return frame.empty(x.shape, torch.int16, x.device).copy_(x).to(torch.uint8)


# Adding 1.5 * 2**23 to a float32 in [0, 2**22) rounds it to a whole number, half to even (as
# torch.round does), which then sits in the low bits of the float's representation; as int32 it
# converts to uint8 by truncation modulo 256, leaving that number. One pass cheaper than
# round, cast to int16, cast to uint8 (in place in x).
_ROUNDING = 12582912.0


def _round_to_uint8(x: Tensor) -> Tensor:
    """Round float values in [0, 255] half to even into a new uint8 tensor (x is overwritten)."""
    return x.add_(_ROUNDING).view(torch.int32).to(torch.uint8)


def _runs(flat: Tensor, length: int) -> Tensor:
    """Every run of `length` consecutive elements of a contiguous 1-D tensor, as the rows of an
    overlapping view: row o is flat[o : o + length]."""
    return flat.as_strided((max(flat.numel() - length + 1, 0), length), (1, 1))


def _pad(frame: Frame, x: Tensor, left: int, right: int, top: int = 0, bottom: int = 0) -> Tensor:
    """x zero-padded, in a buffer of the caller's frame."""
    n, c, h, w = x.shape
    out = frame.empty((n, c, h + top + bottom, w + left + right), x.dtype, x.device)
    out.zero_()  # (a memset; zeroing only the borders is several times slower)
    (out.narrow(2, top, h) if top or bottom else out).narrow(3, left, w).copy_(x)
    return out


_STARTS: dict[tuple[int, torch.device], Tensor] = {}


def _row_starts(rows: int, stride: int, device: torch.device) -> Tensor:
    """0, stride, 2 stride, ... (rows of them), int64: a slice of a cached range (never modify)."""
    starts = _STARTS.get((stride, device))
    if starts is None or len(starts) < rows:
        if len(_STARTS) > 64:
            _STARTS.clear()
        with torch.inference_mode(False):  # (cached tensors are normal ones, see run_slots)
            starts = _STARTS[(stride, device)] = torch.arange(0, 2 * rows * stride, stride, device=device)
    return starts[:rows]


def _shift_rows(x: Tensor, k: Tensor, taps: int = 1) -> list[Tensor]:
    """Rows moved by whole pixels: tap t is out[n, c, i, j] = x[n, c, i, j + k[n, i] + t] (0 outside
    the image), for t < taps <= 2; k is (N, H) whole numbers (float). Every output row is one run
    of the zero-padded row. With one tap the result is a new tensor; with two, views of one."""
    n, c, h, w = x.shape
    lo, hi = (int(v) for v in torch.aminmax(k))
    if lo < -w - 1 or hi > w + 1:  # further out, both taps read zeros all the same
        k = k.clamp(-w - 1, w + 1)
        lo, hi = max(lo, -w - 1), min(hi, w + 1)
    left, right = max(-lo, 0), max(hi, 0) + taps - 1
    wp = w + left + right
    start = _row_starts(n * c * h, wp, x.device).view(n, c, h) + k.long().add_(left).view(n, 1, h)
    with thread_workspace().frame() as frame:
        padded = _pad(frame, x, left, right)
        runs = _runs(padded.view(-1), w + taps - 1).index_select(0, start.view(-1))
    if taps == 1:
        return [runs.view(n, c, h, w)]
    return [runs[:, t : t + w].view(n, c, h, w) for t in range(taps)]


def _shift_planes(x: Tensor, k: Tensor, rows: int | None = None) -> Tensor:
    """Images moved up by whole rows: out[n, c, i, j] = x[n, c, i + k[n], j] (0 outside), for
    i < rows (default H). Every output plane is one run of the row-padded image."""
    n, c, h, w = x.shape
    rows = h if rows is None else rows
    k = k.long().clamp_(-rows, h)  # further out, all zeros all the same
    lo, hi = (int(v) for v in torch.aminmax(k))
    top, bottom = max(-lo, 0), max(hi + rows - h, 0)
    planes = _row_starts(n * c, (h + top + bottom) * w, x.device).view(n, c)
    start = (planes + ((k + top) * w).view(n, 1)).view(-1)
    with thread_workspace().frame() as frame:
        padded = _pad(frame, x, 0, 0, top, bottom)
        return _runs(padded.view(-1), rows * w).index_select(0, start).view(n, c, rows, w)


def _blend_columns(x: Tensor, k: Tensor, f: Tensor) -> Tensor:
    """out[n, c, i, j] = (1 - f) x[n, c, i + k, j] + f x[n, c, i + k + 1, j] with k, f = k[n, j],
    f[n, j] (0 outside), rounded half to even. Each image is first moved by its smallest k, as a
    run of rows; the few remaining offsets r = k - min k (a shear is monotonic along x) are then
    summed as row-shifted views weighted per column: for each pixel, (1 - f) v0 + f v1 plus
    exact zeros, whatever the other images (so the result does not depend on the batch)."""
    n, c, h, w = x.shape
    base = k.amin(1)
    r = k - base.view(n, 1)
    reach = int(r.max()) + 1
    offsets = torch.arange(reach + 1, dtype=r.dtype, device=x.device).view(-1, 1, 1)
    weight = ((r == offsets) * (1 - f) + (r == offsets - 1) * f).view(reach + 1, n, 1, 1, w)
    with thread_workspace().frame() as frame:
        src = _as_float(frame, _shift_planes(x, base, h + reach))  # rows base .. base + h + reach - 1
        out = torch.mul(src[:, :, :h], weight[0], out=frame.empty((n, c, h, w), torch.float32, x.device))
        for offset in range(1, reach + 1):
            out.addcmul_(src[:, :, offset : offset + h], weight[offset])
        return _round_to_uint8(out)


def _interpolate(frame: Frame, v0: Tensor, v1: Tensor, f: Tensor) -> Tensor:
    """v0 + f (v1 - v0) in float32, in a buffer of the caller's frame, each step rounded (see the
    resampling notes)."""
    v0 = _as_float(frame, v0)
    return _as_float(frame, v1).sub_(v0).mul_(f).add_(v0)


def _one_axis(matrix: Tensor) -> str | None:
    """"x" or "y" if every matrix moves pixels along that axis only (see the resampling notes)."""
    m = matrix.reshape(-1, 6)
    x_only, y_only = torch.stack([(m[:, 0] == 1) & (m[:, 3] == 0) & (m[:, 4] == 1) & (m[:, 5] == 0),
                                  (m[:, 0] == 1) & (m[:, 1] == 0) & (m[:, 2] == 0) & (m[:, 4] == 1)]).all(1).tolist()
    return "x" if x_only else "y" if y_only else None


def _resample_axis(x: Tensor, a: Tensor, b: Tensor, axis: str, interpolation: str) -> Tensor | None:
    """One-axis maps (a, b) (N,) each: along x row i moves by d_i = a y_i + b, along y column j
    by d_j = a x_j + b (see the resampling notes). Shifts of whole images along y are runs of
    planes; y shears sum a few row-shifted views (`_blend_columns`). None for nearest sampling
    of anything but whole-pixel shifts."""
    n, c, h, w = x.shape
    d = a.float().view(n, 1) * _centred(h if axis == "x" else w, x.device) + b.float().view(n, 1)
    k = d.floor()
    f = d.sub_(k)
    moving = bool(f.any())
    if interpolation == "nearest" and (moving or bool(a.any())):
        return None  # (rounding a shifted position can differ from rounding the position)
    if axis == "x":
        if not moving:
            return _shift_rows(x, k)[0]
        taps = _shift_rows(x, k, 2)
        with thread_workspace().frame() as frame:
            return _round_to_uint8(_interpolate(frame, taps[0], taps[1], f.view(n, 1, h, 1)))
    if not moving and bool((k == k[:, :1]).all()):
        return _shift_planes(x, k[:, 0])
    return _blend_columns(x, k, f)


def _grid_sample(x: Tensor, matrix: Tensor, interpolation: str, padding: str, inverse: Tensor | None = None) -> Tensor:
    """grid_sample of the float images, image i with matrix[i], or matrix[inverse[i]] if given
    (then the grid of each distinct matrix is computed once: the same float ops, the same values).
    Reflect padding is grid_sample's "reflection", which with align_corners=False is symmetric.
    On CPU the batch goes in pieces of ~1 MiB of float output: grid_sample has no out=, and
    larger fresh blocks are mapped and page-faulted in afresh on every call (see workspace.py)."""
    n, c, h, w = x.shape
    xs, ys, scale = _grid_constants(h, w, x.device)

    def grid(m: Tensor) -> Tensor:  # (M, 2, 3): row 0 gives the source x, row 1 the source y
        m = m.float()
        return (m[:, :, 0:1] * xs + m[:, :, 1:2] * ys + m[:, :, 2:3]).mul_(scale).transpose(1, 2).view(-1, h, w, 2)

    grids = grid(matrix) if inverse is not None else None  # one per distinct matrix
    mode = "zeros" if padding == "zeros" else "reflection"
    out = torch.empty_like(x)
    step = max(1, (1 << 20) // (4 * x[0].numel())) if _host(x) else n
    with thread_workspace().frame() as frame:
        source = _as_float(frame, x)
        for a in range(0, n, step):
            b = min(a + step, n)
            g = grid(matrix[a:b]) if inverse is None else grids.index_select(0, inverse[a:b])
            part = torch.nn.functional.grid_sample(source[a:b], g, interpolation, mode, align_corners=False)
            out[a:b].copy_(part.add_(_ROUNDING).view(torch.int32))  # rounded, see _ROUNDING
    return out


@functools.lru_cache(maxsize=64)
def _grid_constants(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Centred x and y of every pixel (1, 1, H*W), and grid_sample's normalisation (1, 2, 1)."""
    with torch.inference_mode(False):
        xs = _centred(w, device).repeat(h).view(1, 1, h * w)
        ys = _centred(h, device).repeat_interleave(w).view(1, 1, h * w)
        return xs, ys, torch.tensor([2 / w, 2 / h], device=device).view(1, 2, 1)


def _distinct(p: Tensor) -> tuple[Tensor, Tensor | None]:
    """The distinct values of a per-image parameter and each image's index among them (on CPU,
    where the sync is free; elsewhere the values themselves and None)."""
    if not _host(p):
        return p, None
    return torch.unique(p, return_inverse=True)


def affine(
    x: Tensor, matrix: Tensor, interpolation: str = "nearest", padding: str = "zeros", axis: str | None = None
) -> Tensor:
    """Resample every image with its own inverse matrix (N, 2, 3).

    interpolation: "nearest" (round half to even, like grid_sample) or "bilinear" (rounded to
    uint8 like torchvision); padding: "zeros" (torchvision's fill=None) or "reflect" (Keras',
    symmetric: d c b a | a b c d). axis="x" (or "y") promises that every matrix moves pixels
    along that axis only (see the resampling notes), which is otherwise checked for. On other
    devices than the CPU everything goes through grid_sample, without device syncs (results
    may then differ from the CPU's by 1 level on rare pixels).
    """
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"unknown interpolation {interpolation!r}")
    matrix = matrix.to(x.device)
    if x.shape[0] == 0:
        return x.clone()
    if padding == "zeros" and _host(x):
        axis = axis or _one_axis(matrix)
    else:
        axis = None
    if axis is not None:
        ab = (matrix[:, 0, 1], matrix[:, 0, 2]) if axis == "x" else (matrix[:, 1, 0], matrix[:, 1, 2])
        out = _resample_axis(x, *ab, axis, interpolation)
        if out is not None:
            return out
    return _grid_sample(x, matrix, interpolation, padding)


def _matrix(a, b, c, d, e, f) -> Tensor:
    return torch.stack(torch.broadcast_tensors(a, b, c, d, e, f), dim=-1).view(-1, 2, 3)


def rotate_matrix(angle: Tensor, h: int, w: int) -> Tensor:
    """F.rotate's inverse map: counter-clockwise by `angle` degrees about the centre."""
    rad = torch.deg2rad(angle)
    cos, sin = rad.cos(), rad.sin()
    zero = torch.zeros_like(cos)
    return torch.stack([cos, -sin, zero, sin, cos, zero], dim=-1).view(-1, 2, 3)


# One-axis maps as (a, b): along x, row i (centred y_i) moves by a * y_i + b, the matrix being
# [[1, a, b], [0, 1, 0]]; along y, column j moves by a * x_j + b, [[1, 0, 0], [a, 1, b]].


def shear_x_shift(m: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """AutoAugment's ShearX: source x = x + m * y about the top-left corner (PIL's (1, m, 0, 0, 1, 0))."""
    return m, m * (h / 2)


def shear_y_shift(m: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """AutoAugment's ShearY: source y = y + m * x about the top-left corner."""
    return m, m * (w / 2)


def translate_shift(t: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """F.affine(translate=t along one axis): the content moves by t pixels (right or down)."""
    return torch.zeros_like(t), -t


def _axis_matrix(shift, axis: str):
    def matrix(p: Tensor, h: int, w: int) -> Tensor:
        a, b = shift(p, h, w)
        one, zero = torch.ones_like(b), torch.zeros_like(b)
        return _matrix(one, a, b, zero, one, zero) if axis == "x" else _matrix(one, zero, zero, a, one, b)

    matrix.__doc__ = shift.__doc__
    return matrix


shear_x_matrix = _axis_matrix(shear_x_shift, "x")
shear_y_matrix = _axis_matrix(shear_y_shift, "y")
translate_x_matrix = _axis_matrix(translate_shift, "x")
translate_y_matrix = _axis_matrix(translate_shift, "y")


def zoom_matrix(scale: Tensor, h: int, w: int) -> Tensor:
    """F.affine(scale=s) about the centre: s > 1 enlarges the content."""
    inv, zero = 1.0 / scale, torch.zeros_like(scale)
    return _matrix(inv, zero, zero, zero, inv, zero)


def _geometric(matrix_fn):
    def op(x: Tensor, p, interpolation: str = "nearest", padding: str = "zeros") -> Tensor:
        h, w = x.shape[-2:]
        return affine(x, matrix_fn(_param(p, x), h, w), interpolation, padding)

    return op


rotate = _geometric(rotate_matrix)
rotate.__doc__ = "F.rotate(img, angle) (degrees, counter-clockwise, same size, fill 0)."
shear_x = _geometric(shear_x_matrix)
shear_x.__doc__ = "F.affine(img, shear=[degrees(atan(m)), 0], center=[0, 0]), AutoAugment's ShearX."
shear_y = _geometric(shear_y_matrix)
shear_y.__doc__ = "F.affine(img, shear=[0, degrees(atan(m))], center=[0, 0]), AutoAugment's ShearY."
translate_x = _geometric(translate_x_matrix)
translate_x.__doc__ = "F.affine(img, translate=[t, 0]) (pixels)."
translate_y = _geometric(translate_y_matrix)
translate_y.__doc__ = "F.affine(img, translate=[0, t]) (pixels)."
zoom = _geometric(zoom_matrix)
zoom.__doc__ = "F.affine(img, scale=s) about the centre (s > 1 enlarges)."


def crop_flip(x: Tensor, top, left, flip=False, pad: int = 4) -> Tensor:
    """F.crop(F.pad(img, pad), top, left, H, W) (top, left in 0..2*pad), then F.horizontal_flip
    where `flip`: the standard CIFAR augmentation. Every output row is a run of the padded image;
    the flipped images are then reversed along x (on CPU as whole rows, elsewhere by a select)."""
    n, c, h, w = x.shape
    top, left = _param(top, x, torch.long).view(n, 1, 1), _param(left, x, torch.long).view(n, 1, 1)
    flip = _param(flip, x, torch.bool)
    hp, wp = h + 2 * pad, w + 2 * pad
    planes = torch.arange(n * c, device=x.device).view(n, c, 1) * (hp * wp)
    start = planes + (top + torch.arange(h, device=x.device).view(1, 1, h)) * wp + left
    with thread_workspace().frame() as frame:
        padded = _pad(frame, x, pad, pad, pad, pad).view(-1)
        out = _runs(padded, w).index_select(0, start.view(-1)).view(n, c, h, w)
    if not _host(x):
        return torch.where(flip.view(n, 1, 1, 1), out.flip(-1), out)
    flipped = flip.nonzero().view(-1)
    if len(flipped):
        put_rows(out, flipped, take_rows(out, flipped).flip(-1))
    return out


def crop(x: Tensor, top, left, pad: int = 4) -> Tensor:
    """F.crop(F.pad(img, pad), top, left, H, W): a crop of the zero-padded image (top, left in 0..2*pad)."""
    return crop_flip(x, top, left, False, pad)


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


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Op:
    """A batched op: `apply(x, param)` for pixel ops, or `matrix(param, h, w)` for affine ones;
    one-axis affine ops also give `shift(param, h, w)` -> (a, b) (see the resampling notes)."""

    name: str
    apply: Callable[[Tensor, Tensor], Tensor] | None = None
    matrix: Callable[[Tensor, int, int], Tensor] | None = None
    axis: str | None = None  # "x"/"y": the matrix only moves pixels along that axis
    shift: Callable[[Tensor, int, int], tuple[Tensor, Tensor]] | None = None


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("identity"),
        Op("autocontrast", autocontrast),
        Op("equalize", equalize),
        Op("invert", invert),
        Op("posterize", posterize),
        Op("solarize", solarize),
        Op("color", color),
        Op("contrast", contrast),
        Op("brightness", brightness),
        Op("sharpness", sharpness),
        Op("rotate", matrix=rotate_matrix),
        Op("shear_x", matrix=shear_x_matrix, axis="x", shift=shear_x_shift),
        Op("shear_y", matrix=shear_y_matrix, axis="y", shift=shear_y_shift),
        Op("translate_x", matrix=translate_x_matrix, axis="x", shift=translate_shift),
        Op("translate_y", matrix=translate_y_matrix, axis="y", shift=translate_shift),
        Op("zoom", matrix=zoom_matrix),
    ]
}


def _kernel(spec: Op, interpolation: str, padding: str) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The batched function (images, params) -> images of an op; None for identity. The same
    results as the op's function (affine ops: `affine` with the op's matrices), reached faster."""
    if spec.apply is not None:
        return spec.apply
    if spec.matrix is None:
        return None

    def resample(x: Tensor, p: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        # (row runs size their padding from the shifts: a device sync, so on CPU only)
        if spec.shift is not None and padding == "zeros" and _host(x):
            out = _resample_axis(x, *spec.shift(p, h, w), spec.axis, interpolation)
            if out is not None:
                return out
        # Policies draw few distinct values (AugMix: whole degrees; RandAugment: one magnitude):
        # the grid of each is computed once.
        values, inverse = _distinct(p)
        return _grid_sample(x, spec.matrix(values, h, w), interpolation, padding, inverse)

    return resample


def run_slots(
    x: Tensor,
    op: Tensor,
    param: Tensor,
    names: list[str] | tuple[str, ...],
    interpolation: str = "nearest",
    padding: str = "zeros",
    nearest: frozenset[str] | set[str] = frozenset(),
    overwrite: bool = False,
) -> Tensor:
    """Apply op slots in turn: at slot s, image i gets OPS[names[op[i, s]]] with param[i, s];
    op < 0 leaves it unchanged. op and param are (N, S) (or (N,) for one slot). `nearest` names
    affine ops resampled with nearest sampling whatever the interpolation (e.g. whole-pixel
    shifts, where both agree). overwrite=True lets it work in place in x (contiguous).

    On CPU, per slot, the images are grouped by op (one argsort, and the group sizes read on the
    host): each op runs once on the images that drew it, copied out as whole rows, and its
    results are copied back in place of them. Images without an op in a slot are not touched.
    Elsewhere reading the sizes would stall the host every slot, so `_slot_without_sync` runs
    each op on the whole batch instead (the same per-image results, see there).
    """
    n = x.shape[0]
    op = op.to(device=x.device, dtype=torch.long).view(n, -1).clamp(min=-1)
    param = param.to(x.device).view(n, -1)
    kernels = [_kernel(OPS[name], "nearest" if name in nearest else interpolation, padding) for name in names]
    out = x.contiguous() if overwrite else None
    shape = x.shape[1:]
    workspace = thread_workspace()
    for slot in range(op.shape[1]):
        if not _host(x):
            new = _slot_without_sync(x if out is None else out, op[:, slot], param[:, slot], kernels)
            out = new if out is None else out.copy_(new)
            continue
        sizes = torch.bincount(op[:, slot] + 1, minlength=len(names) + 1).tolist()  # free on the CPU
        if not any(size for kernel, size in zip(kernels, sizes[1:]) if kernel is not None):
            continue
        if out is None:
            out = x.clone(memory_format=torch.contiguous_format)  # the caller's images stay as they are
        rows = _row_view(out)  # whole images as wide elements, for the copies back
        images = out.view(n, -1)  # and as bytes, for the copies out (as fast, and one view less)
        order = torch.argsort(op[:, slot])
        slot_param = param[:, slot].index_select(0, order)
        start = sizes[0]
        # (inference mode skips autograd's bookkeeping, ~5% of the time; everything made in it is
        # copied into `out`, made outside it, before the block ends)
        with torch.inference_mode():
            for kernel, size in zip(kernels, sizes[1:]):
                if size and kernel is not None:
                    index = order[start : start + size]
                    with workspace.frame() as frame:  # the group's copy, free once copied back
                        group = frame.empty((size, *shape), x.dtype, x.device)
                        torch.index_select(images, 0, index, out=group.view(size, -1))
                        result = kernel(group, slot_param[start : start + size])
                        rows.index_copy_(0, index, result.reshape(size, -1).view(rows.dtype))
                start += size
    return x if out is None else out



def _slot_without_sync(x: Tensor, op: Tensor, param: Tensor, kernels: list) -> Tensor:
    """One slot of run_slots without reading anything back: every op runs on the whole batch and
    its result is kept for the images that drew it. Images that drew another op get, for this op,
    the parameter of an image that did draw it (or any image's: the result is dropped), so no op
    sees a parameter outside its range. The ops are per image, so each image's result is the same
    as with grouping; the extra arithmetic is cheap on a GPU next to a stall per slot."""
    out = x
    for k, kernel in enumerate(kernels):
        if kernel is None:
            continue
        drawn = op == k
        donor = param.index_select(0, drawn.to(torch.uint8).argmax().view(1))
        result = kernel(x.clone(), torch.where(drawn, param, donor))  # (kernels may work in place)
        out = torch.where(drawn.view(-1, *([1] * (x.dim() - 1))), result, out)
    return out
