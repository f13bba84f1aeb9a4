"""Slot dispatch: the registry of ops by name (`OPS`) and `run_slots`, which routes a batch with
per-sample op choices: at each slot, every op runs once on the images that drew it.

Kept apart from the ops themselves because it is the one place that knows every op: policies draw
op indices and parameters and hand them here; pixel.py and geometry.py know nothing of slots.
Nothing loops over images in Python. On CPU the images are grouped by op (group sizes read on the
host) and copied through this thread's workspace; on other devices each slot takes a path without
device syncs (`_slot_without_sync`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from . import common  # (common._host is looked up at call time: tests patch it there)
from .common import _row_view
from .geometry import (_distinct, _grid_sample, _resample_axis, rotate_matrix, shear_x_matrix, shear_x_shift,
                       shear_y_matrix, shear_y_shift, translate_shift, translate_x_matrix, translate_y_matrix,
                       zoom_matrix)
from .pixel import autocontrast, brightness, color, contrast, equalize, invert, posterize, sharpness, solarize
from .workspace import thread_workspace


@dataclass(frozen=True)
class Op:
    """A batched op: `apply(x, param)` for pixel ops, or `matrix(param, h, w)` for affine ones;
    one-axis affine ops also give `shift(param, h, w)` -> (a, b) (see geometry.py's resampling notes)."""

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
    results as the op's function (affine ops: `geometry.affine` with the op's matrices), reached faster."""
    if spec.apply is not None:
        return spec.apply
    if spec.matrix is None:
        return None

    def resample(x: Tensor, p: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        # (row runs size their padding from the shifts: a device sync, so on CPU only)
        if spec.shift is not None and padding == "zeros" and common._host(x):
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
        if not common._host(x):
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
