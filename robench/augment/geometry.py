"""Geometric ops: per-sample flips, crops and affine warps (rotate, shear, translate, zoom),
and the resampling behind them (row runs, grid_sample).

Kept apart from pixel.py because these move pixels instead of changing values, share one
inverse-matrix convention and one resampling machinery (see "resampling" below), and agree with
torchvision to a stated tolerance rather than bit for bit: affine ops map every output pixel to a
source position with a per-sample inverse matrix. Nearest sampling rounds half to even like
grid_sample; our float32 positions can fall on the other side of an exact .5 than torchvision's
differently computed float32 grid, so these are stated to agree on >= 99% of pixels (in practice
all of them; whole-pixel shifts always). Bilinear results are rounded like torchvision's and may
differ by 1 on rare pixels. Flips and crops are exact copies. (Conventions shared by all ops:
common.py.)
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from . import common  # (common._host is looked up at call time: tests patch it there)
from .common import _as_float, _param, put_rows, take_rows
from .workspace import Frame, thread_workspace

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
    with torch.inference_mode(False):  # (cached tensors are normal ones, see dispatch.run_slots)
        return torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2


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
        with torch.inference_mode(False):  # (cached tensors are normal ones, see dispatch.run_slots)
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
    step = max(1, (1 << 20) // (4 * x[0].numel())) if common._host(x) else n
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
    if not common._host(p):
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
    if padding == "zeros" and common._host(x):
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


# ----------------------------------------------------------------------------- flips and crops


def hflip(x: Tensor, flip=True) -> Tensor:
    """F.horizontal_flip of the images whose `flip` is true (all by default)."""
    flip = _param(flip, x, torch.bool)
    out = x.clone()
    out[flip] = x[flip].flip(-1)
    return out


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
    if not common._host(x):
        return torch.where(flip.view(n, 1, 1, 1), out.flip(-1), out)
    flipped = flip.nonzero().view(-1)
    if len(flipped):
        put_rows(out, flipped, take_rows(out, flipped).flip(-1))
    return out


def crop(x: Tensor, top, left, pad: int = 4) -> Tensor:
    """F.crop(F.pad(img, pad), top, left, H, W): a crop of the zero-padded image (top, left in 0..2*pad)."""
    return crop_flip(x, top, left, False, pad)
