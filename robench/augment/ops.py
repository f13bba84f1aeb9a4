"""Batched image ops with per-sample parameters, on uint8 (N, 3, H, W) tensors.

Every op takes a batch and one parameter per image (a tensor of shape (N,), or a number used for
all) and returns a uint8 batch of the same shape. Each op reproduces the torchvision function named
in its docstring (torchvision.transforms.v2.functional, called on one image with that image's
parameter):

* pixel ops are bit-exact. torchvision blends in float32 with a fused multiply-add
  (`a.mul(r).add_(b, alpha=1 - r)`) and truncates to uint8, so near-integer results depend on the
  last float32 bit. We emulate that arithmetic in float64: every product of a uint8 value and a
  float32 factor is exact there, and one rounding to float32 afterwards gives the fused result.
  Ops that depend on the pixel value only (autocontrast, equalize, contrast) build a 256-entry
  table per image (and channel) and look every pixel up in it.
* affine ops (rotate, shear, translate, zoom) map every output pixel to a source position with a
  per-sample inverse matrix and read all images with one gather per tap (crop and flip likewise).
  Nearest sampling rounds half to even like grid_sample; our float32 positions can fall on the
  other side of an exact .5 than torchvision's differently computed float32 grid, so these are
  stated to agree on >= 99% of pixels (in practice all of them; whole-pixel shifts always).
  Bilinear results are rounded like torchvision's and may differ by 1 on rare pixels.

`run_slots` applies a different op to each image of a batch, slot after slot: each op runs once
on the images that drew it, and the affine ops of a slot are resampled together (one call with
nearest sampling; with bilinear, x-only shears/shifts, y-only ones and the rest get a call each,
as one-axis resampling needs two taps instead of four). Nothing loops over images in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

# ----------------------------------------------------------------------------- helpers


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


def take_rows(x: Tensor, index: Tensor) -> Tensor:
    """x[index] along dim 0 (index_select on a 2-D view is several times faster than on 4-D)."""
    return x.reshape(x.shape[0], -1).index_select(0, index).view(-1, *x.shape[1:])


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
    return (x.reshape(rows, -1).int() + offsets).view(-1)


def _apply_lut(x: Tensor, lut: Tensor, index: Tensor | None = None) -> Tensor:
    """out[n, c] = lut[n, c][x[n, c]] for a (N, C, 256) uint8 table (C = 1: one table per image)."""
    if index is None:
        index = _lut_index(x, per_channel=lut.shape[1] > 1)
    return lut.reshape(-1).index_select(0, index).view(x.shape)


def autocontrast(x: Tensor, _=None) -> Tensor:
    """F.autocontrast: stretch each channel to [0, 255] (constant channels are left alone).

    torchvision's float32 formula, (v - lo) / ((hi - lo) * (1 / 255)), evaluated once per value
    v in 0..255 as a per-channel lookup table."""
    lo = x.amin(dim=(-2, -1)).float().unsqueeze(-1)
    hi = x.amax(dim=(-2, -1)).float().unsqueeze(-1)
    flat = hi == lo
    inv_scale = torch.where(flat, 1.0, (hi - lo) * (1.0 / 255))
    lo = torch.where(flat, 0.0, lo)
    values = torch.arange(256, dtype=torch.float32, device=x.device)
    return _apply_lut(x, ((values - lo) / inv_scale).clamp_(0, 255).to(torch.uint8))


def equalize(x: Tensor, _=None) -> Tensor:
    """F.equalize: PIL's histogram equalisation, per image and channel.

    PIL's lookup table: step = (pixels - count of the highest occupied value) // 255; when step is
    0 the channel is unchanged; otherwise lut[v] = (step // 2 + #pixels below v) // step, clipped.
    """
    n, c, h, w = x.shape
    index = _lut_index(x)  # also the histogram bins, one range of 256 per image and channel
    if x.device.type == "cpu":  # bincount is the fastest CPU histogram
        hist = torch.bincount(index, minlength=n * c * 256)
    else:  # scatter_add avoids bincount's device sync
        hist = torch.zeros(n * c * 256, dtype=torch.long, device=x.device)
        hist.scatter_add_(0, index.long(), hist.new_ones(1).expand(index.shape))
    # The table arithmetic runs in float32, exact for these integers (counts below 2**24), on
    # (N * C, 256) entries; the count of the highest occupied value is read at the channel max.
    hist = hist.view(n * c, 256)
    top_count = hist.gather(1, x.amax(dim=(-2, -1)).view(n * c, 1).long())
    step = torch.div(h * w - top_count, 255, rounding_mode="floor").float()
    hist = hist.float()
    below = hist.cumsum(1).sub_(hist)
    lut = below.add_(torch.div(step, 2, rounding_mode="floor")).div_(step.clamp(min=1)).floor_().clamp_(max=255)
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
    luma = luma.addcmul_(g.to(dt), torch.tensor(_GRAY[1], dtype=dt, device=x.device)).float().to(dt)
    luma = luma.addcmul_(b.to(dt), torch.tensor(_GRAY[2], dtype=dt, device=x.device)).float()
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


_CPU_CHUNK = 128  # images per bilinear resampling call on CPU


def _reflect(i: Tensor, n: int) -> Tensor:
    """Symmetric reflection of integer positions into [0, n): (d c b a | a b c d | d c b a)."""
    i = torch.remainder(i, 2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def source_positions(matrix: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """Source row and column (N, H, W) in float32 pixel indices for each output pixel."""
    m = matrix.float().view(-1, 6, 1, 1).unbind(1)
    xs = torch.arange(w, dtype=torch.float32, device=matrix.device).view(1, 1, w) - (w - 1) / 2
    ys = torch.arange(h, dtype=torch.float32, device=matrix.device).view(1, h, 1) - (h - 1) / 2
    sx = (m[0] * xs + (m[2] + (w - 1) / 2)) + m[1] * ys
    sy = (m[3] * xs + (m[5] + (h - 1) / 2)) + m[4] * ys
    return sy, sx


def affine(
    x: Tensor, matrix: Tensor, interpolation: str = "nearest", padding: str = "zeros", axis: str | None = None
) -> Tensor:
    """Resample every image with its own inverse matrix (N, 2, 3); one gather per tap.

    interpolation: "nearest" (round half to even, like grid_sample) or "bilinear" (rounded to
    uint8 like torchvision); padding: "zeros" (torchvision's fill=None) or "reflect" (Keras').
    axis="x" (or "y") promises that every matrix maps rows to rows (columns to columns), as a
    shear or shift along x (y) does; bilinear then reads two taps instead of four.
    """
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"unknown interpolation {interpolation!r}")
    n, c, h, w = x.shape
    if x.device.type == "cpu" and interpolation == "bilinear" and n > _CPU_CHUNK:
        # Bilinear makes several float copies of its input; in chunks they stay small enough to be
        # reused by the allocator (and cached) instead of being mapped afresh on every call.
        return torch.cat([affine(x[i : i + _CPU_CHUNK], matrix[i : i + _CPU_CHUNK], interpolation, padding, axis)
                          for i in range(0, n, _CPU_CHUNK)])
    sy, sx = source_positions(matrix.to(x.device), h, w)
    # Read from a padded copy through one flat index per output pixel (shared by the channels).
    # "zeros": pad 1 px before and 2 after with zeros and clamp positions to [-1, size], so every
    # outside tap lands on zeros. "reflect": pad symmetrically as far as the positions reach.
    if padding == "reflect":
        reach = max(-float(torch.minimum(sy.min(), sx.min())), float(sy.max()) - h + 1, float(sx.max()) - w + 1)
        before = max(int(math.ceil(reach)), 0) + 1
        rows = _reflect(torch.arange(-before, h + before + 1, device=x.device), h)
        cols = _reflect(torch.arange(-before, w + before + 1, device=x.device), w)
        src = x.index_select(2, rows).index_select(3, cols)
    else:
        before = 1
        sy.clamp_(-1, h)
        sx.clamp_(-1, w)
        src = torch.nn.functional.pad(x, (1, 2, 1, 2))
    stride = src.shape[-1]
    src = src.reshape(n, c, -1)

    def read(index: Tensor, offset: int = 0) -> Tensor:  # offset: a neighbouring tap
        index = index.view(n, 1, -1).expand(n, c, -1)
        return src[..., offset:].gather(2, index).view(n, c, h, w)

    def flat(iy: Tensor, ix: Tensor) -> Tensor:  # whole float positions -> flat int64 index
        return iy.add_(before).mul_(stride).add_(ix).add_(before).long()

    if interpolation == "nearest":
        return read(flat(sy.round_(), sx.round_()))
    y0, x0 = sy.floor(), sx.floor()
    fy, fx = sy.sub_(y0).unsqueeze(1), sx.sub_(x0).unsqueeze(1)
    i00 = flat(y0, x0)
    # Blends run in place. A convex blend of values in [0, 255] stays in range, so rounding (half
    # to even, like torchvision) is the only fix-up before the cast.
    if axis == "x":  # whole rows: blend along x only
        out = read(i00).float().lerp_(read(i00, 1).float(), fx)
    elif axis == "y":
        out = read(i00).float().lerp_(read(i00, stride).float(), fy)
    else:  # top = lerp(v00, v01, fx), bottom = lerp(v10, v11, fx), out = lerp(top, bottom, fy)
        out = read(i00).float().lerp_(read(i00, 1).float(), fx)
        out.lerp_(read(i00, stride).float().lerp_(read(i00, stride + 1).float(), fx), fy)
    return out.round_().to(torch.uint8)


def _matrix(a, b, c, d, e, f) -> Tensor:
    return torch.stack(torch.broadcast_tensors(a, b, c, d, e, f), dim=-1).view(-1, 2, 3)


def rotate_matrix(angle: Tensor, h: int, w: int) -> Tensor:
    """F.rotate's inverse map: counter-clockwise by `angle` degrees about the centre."""
    rad = torch.deg2rad(angle)
    cos, sin, zero = rad.cos(), rad.sin(), torch.zeros_like(rad)
    return _matrix(cos, -sin, zero, sin, cos, zero)


def shear_x_matrix(m: Tensor, h: int, w: int) -> Tensor:
    """AutoAugment's ShearX: source x = x + m * y about the top-left corner (PIL's (1, m, 0, 0, 1, 0))."""
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _matrix(one, m, m * (h / 2), zero, one, zero)


def shear_y_matrix(m: Tensor, h: int, w: int) -> Tensor:
    """AutoAugment's ShearY: source y = y + m * x about the top-left corner."""
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _matrix(one, zero, zero, m, one, m * (w / 2))


def translate_x_matrix(t: Tensor, h: int, w: int) -> Tensor:
    """F.affine(translate=[t, 0]): the content moves right by t pixels."""
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _matrix(one, zero, -t, zero, one, zero)


def translate_y_matrix(t: Tensor, h: int, w: int) -> Tensor:
    """F.affine(translate=[0, t]): the content moves down by t pixels."""
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _matrix(one, zero, zero, zero, one, -t)


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
    where `flip`: the standard CIFAR augmentation, as one gather."""
    n, c, h, w = x.shape
    top, left = _param(top, x, torch.long).view(n, 1), _param(left, x, torch.long).view(n, 1)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = torch.where(_param(flip, x, torch.bool).view(n, 1), w - 1 - cols, cols) + left
    rows = torch.arange(h, device=x.device) + top
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)).reshape(n, c, -1)
    index = (rows.view(n, h, 1) * (w + 2 * pad) + cols.view(n, 1, w)).view(n, 1, h * w)
    return padded.gather(2, index.expand(n, c, h * w)).view(n, c, h, w)


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
    """A batched op: `apply(x, param)` for pixel ops, or `matrix(param, h, w)` for affine ones."""

    name: str
    apply: Callable[[Tensor, Tensor], Tensor] | None = None
    matrix: Callable[[Tensor, int, int], Tensor] | None = None
    axis: str | None = None  # "x"/"y": the matrix only moves pixels along that axis


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
        Op("shear_x", matrix=shear_x_matrix, axis="x"),
        Op("shear_y", matrix=shear_y_matrix, axis="y"),
        Op("translate_x", matrix=translate_x_matrix, axis="x"),
        Op("translate_y", matrix=translate_y_matrix, axis="y"),
        Op("zoom", matrix=zoom_matrix),
    ]
}


def run_slots(
    x: Tensor,
    op: Tensor,
    param: Tensor,
    names: list[str] | tuple[str, ...],
    interpolation: str = "nearest",
    padding: str = "zeros",
    nearest: frozenset[str] | set[str] = frozenset(),
) -> Tensor:
    """Apply op slots in turn: at slot s, image i gets OPS[names[op[i, s]]] with param[i, s];
    op < 0 leaves it unchanged. op and param are (N, S) (or (N,) for one slot).

    Per slot, the batch is sorted by op (one device sync for the group sizes), so each op runs once
    on a contiguous slice of the images that drew it, and the affine ops are resampled together:
    one call with nearest sampling (`nearest` names affine ops resampled that way whatever the
    interpolation, e.g. whole-pixel shifts), and for bilinear one call per axis class (see
    `affine`'s axis). Images stay in sorted order between slots and are put back once at the end.
    """
    n, _, h, w = x.shape
    op = op.to(device=x.device, dtype=torch.long).view(n, -1).clamp(min=-1)
    param = param.to(x.device).view(n, -1)
    # Sort keys: unchanged images first, then pixel ops, then affine ops by resampling call:
    # nearest, then bilinear along x only, along y only, and general (see `affine`'s axis).
    specs = [OPS[name] for name in names]
    calls = {2: ("nearest", None), 3: (interpolation, "x"), 4: (interpolation, "y"), 5: (interpolation, None)}

    def kind(spec, name):
        if spec.apply is None and spec.matrix is None:
            return 0
        if spec.matrix is None:
            return 1
        if name in nearest or interpolation == "nearest":
            return 2
        return {"x": 3, "y": 4}.get(spec.axis, 5)

    kinds = [kind(spec, name) for spec, name in zip(specs, names)]
    ranked = sorted(range(len(names)), key=lambda k: (kinds[k], k))
    rank = torch.empty(len(names) + 1, dtype=torch.long)
    rank[0] = 0
    rank[[k + 1 for k in ranked]] = torch.arange(1, len(names) + 1)
    rank = rank.to(x.device)
    perm = torch.arange(n, device=x.device)  # perm[j] = original index of the image in row j
    moved = False
    for slot in range(op.shape[1]):
        key = rank[op[perm, slot] + 1]
        sizes = torch.bincount(key, minlength=len(names) + 1).tolist()  # the one device sync
        if sizes[0] == n:
            continue
        order = torch.argsort(key, stable=True)
        perm, moved = perm[order], True
        slot_param = param[perm, slot]
        x = take_rows(x, order)
        pieces, start = [], 0
        affine_parts = {k: [] for k in calls}  # kind -> [(start, stop, matrices)]
        for size, k in zip(sizes, [None] + ranked):
            stop = start + size
            if size and k is not None and kinds[k] == 1:
                pieces.append(specs[k].apply(x[start:stop], slot_param[start:stop]))
            elif size and k is not None and kinds[k] >= 2:
                affine_parts[kinds[k]].append((start, stop, specs[k].matrix(slot_param[start:stop], h, w)))
            elif size:
                pieces.append(x[start:stop])
            start = stop
        for k, parts in affine_parts.items():
            if parts:
                a, b = parts[0][0], parts[-1][1]  # same-kind groups are adjacent in sorted order
                matrices = torch.cat([m for _, _, m in parts])
                mode, axis = calls[k]
                pieces.append(affine(x[a:b], matrices, mode, padding, axis))
        x = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
    if not moved:
        return x
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n, device=x.device)
    return take_rows(x, inverse)


def apply_ops(
    x: Tensor,
    op: Tensor,
    param: Tensor,
    names: list[str] | tuple[str, ...],
    interpolation: str = "nearest",
    padding: str = "zeros",
) -> Tensor:
    """Apply OPS[names[op[i]]] with param[i] to image i (op[i] < 0: unchanged); one slot of `run_slots`."""
    return run_slots(x, op.view(-1, 1), param.view(-1, 1), names, interpolation, padding)
