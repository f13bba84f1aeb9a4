"""Scratch memory for the batched ops: buffers reused from call to call, handed out by frames.

Why it exists: on CPU, glibc gives freed memory at the top of the heap back to the OS once it
exceeds a threshold, and a batch's temporaries (several MiB) easily do; freshly allocated, every
call then page-faults its temporaries in afresh, at ~2 us per 4 KiB page, which cost more than
the arithmetic of the ops. So the CPU ops take their large temporaries from a workspace that keeps
its memory between calls.

Lifetime rule: a buffer belongs to the frame that handed it out and is valid until that frame's
`with` block ends:

    with thread_workspace().frame() as frame:
        a = frame.empty(shape, torch.float32, device)
        b = frame.empty(shape, torch.int16, device)  # its own memory: never aliases a
        ...                                          # a and b stay valid until here

Every buffer handed out while its frame is open gets a slot of its own (a stack: frames nest, and
a nested frame's slots lie above its parent's), so no two live buffers share memory. When a frame
closes, its slots are free again; the next frame at the same depth (the same op in the next
call) reuses their memory. Only the innermost open frame may hand out buffers: an outer one would
take a slot that the inner frame frees on exit. Nothing in a buffer may outlive its frame, so a
function that returns a buffer takes its caller's frame, and a function that returns a new tensor
opens its own.

Threads: a workspace belongs to the thread that made it (frames check), and thread_workspace()
gives each thread its own, so two threads running one policy never share a buffer.

Off the CPU, frames hand out plain `torch.empty` tensors: the caching allocator already reuses
device memory, and there is nothing to page-fault.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

_ALIGN = 64  # slot sizes are whole multiples, so a slot's bytes view as any dtype


class Workspace:
    """Scratch buffers for one thread, handed out by `frame()` (see the module notes)."""

    def __init__(self) -> None:
        self._owner = threading.get_ident()
        self._slots: list[Tensor] = []  # uint8, one per live buffer of the deepest stack seen so far
        self._views: list[dict[torch.dtype, Tensor]] = []  # each slot's bytes, flat, per dtype
        self._top = 0  # slots taken by the open frames
        self._depth = 0  # open frames

    def frame(self) -> Frame:
        """A new frame, to be used as `with workspace.frame() as frame:`."""
        return Frame(self)

    @property
    def nbytes(self) -> int:
        """The memory held between calls."""
        return sum(slot.numel() for slot in self._slots)

    def release(self) -> None:
        """Give the memory back (the next calls allocate it again); only with no frame open."""
        if self._depth:
            raise RuntimeError("workspace.release() while a frame is open")
        self._slots.clear()
        self._views.clear()

    def _take(self, shape, dtype: torch.dtype) -> Tensor:
        """The next slot as an uninitialised contiguous tensor; grown (its old contents lost) if small."""
        slot = self._top
        numel = math.prod(shape)
        nbytes = -(-numel * dtype.itemsize // _ALIGN) * _ALIGN
        if slot == len(self._slots):
            self._slots.append(torch.empty(0, dtype=torch.uint8))
            self._views.append({})
        if self._slots[slot].numel() < nbytes:
            with torch.inference_mode(False):  # (a normal tensor, usable in and out of inference mode)
                self._slots[slot] = torch.empty(nbytes, dtype=torch.uint8)
            self._views[slot] = {}
        flat = self._views[slot].get(dtype)
        if flat is None:
            with torch.inference_mode(False):
                flat = self._views[slot][dtype] = self._slots[slot].view(dtype)
        self._top = slot + 1
        strides, step = [], 1
        for size in reversed(shape):
            strides.append(step)
            step *= size
        return flat.as_strided(shape, strides[::-1])  # (the slot's start, contiguous: one call)


class Frame:
    """The buffers of one `with` block: `empty()` hands them out, the end of the block frees them."""

    __slots__ = ("_workspace", "_base", "_depth")

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._depth = 0  # 0: not open

    def __enter__(self) -> Frame:
        ws = self._workspace
        if threading.get_ident() != ws._owner:
            raise RuntimeError("a workspace belongs to one thread; use thread_workspace() in each thread")
        if self._depth:
            raise RuntimeError("a frame is entered once")
        ws._depth += 1
        self._depth, self._base = ws._depth, ws._top
        return self

    def __exit__(self, *exc) -> None:
        ws = self._workspace
        ws._top, ws._depth = self._base, ws._depth - 1
        self._depth = -1  # closed for good

    def empty(self, shape, dtype: torch.dtype, device: torch.device | str = "cpu") -> Tensor:
        """An uninitialised contiguous tensor, valid until this frame's block ends: on CPU the
        frame's next slot of the workspace, never shared with another live buffer; elsewhere a
        fresh tensor."""
        if self._depth < 1 or self._depth != self._workspace._depth:
            raise RuntimeError("only the innermost open frame hands out buffers")
        if (device if isinstance(device, torch.device) else torch.device(device)).type != "cpu":
            return torch.empty(shape, dtype=dtype, device=device)
        return self._workspace._take(tuple(shape), dtype)


_LOCAL = threading.local()


def thread_workspace() -> Workspace:
    """The calling thread's workspace (made on first use, kept for the thread's life)."""
    ws = getattr(_LOCAL, "workspace", None)
    if ws is None:
        ws = _LOCAL.workspace = Workspace()
    return ws
