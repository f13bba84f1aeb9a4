"""What the pixel, geometry and dispatch modules share: per-sample parameters, exact float
arithmetic, whole-row copies, and the one switch between the CPU paths and the device paths.

Kept in a module of its own so that pixel.py and geometry.py need not import each other, and
dispatch.py imports both without a cycle.

Every op of pixel.py and geometry.py takes a uint8 (N, 3, H, W) batch and one parameter per image
(a tensor of shape (N,), or a number used for all) and returns a uint8 batch of the same shape.
Each op reproduces the torchvision function named in its docstring
(torchvision.transforms.v2.functional, called on one image with that image's parameter).

On CPU the large temporaries are buffers of this thread's workspace, reused from call to call
(see workspace.py): freshly allocated, they were returned to the OS and faulted in again on every
call, which cost more than the arithmetic. Each op takes them from a frame of its own, so they are
free again when it returns; a helper that returns such a buffer takes its caller's frame. The CPU
paths size their work from the data (group sizes, shift extents, distinct values); on other
devices the ops, run_slots included, take paths without device syncs (see `_host`: the other
modules look it up here at call time, so patching `common._host` switches every path).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .workspace import Frame


def _host(t: Tensor | torch.device) -> bool:
    """Whether t lives on the CPU, where device syncs are free: the CPU paths may size their work
    from the data (group sizes, shift extents, distinct values); other devices take sync-free
    paths. (Tests patch this to run the other paths on CPU.)"""
    return (t if isinstance(t, torch.device) else t.device).type == "cpu"


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
