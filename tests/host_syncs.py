"""Counting the calls that make the host wait for the device, on the CPU.

On a GPU, reading a value back (`.item()`, `.tolist()`, `int(t)`, `bool(t)`, a boolean-mask
index, `nonzero`, `torch.equal`, `unique`, `.cpu()`) stalls the Python thread until the device
has caught up, so a hot loop must not do it per step. `HostSyncs` counts such calls made through
torch's Python API (a TorchFunctionMode sees every tensor method and function call), so a test
can show on the CPU that a loop's number of syncs does not grow with its number of steps.
"""

from __future__ import annotations

import collections
import traceback

import torch
from torch.overrides import TorchFunctionMode

_READS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "argwhere",
          "masked_select", "equal", "unique", "unique_consecutive", "cpu", "numpy", "bincount"}
_UPLOADS = {"tensor", "as_tensor"}  # from Python data: a host-to-device copy per call on a GPU


def _is_sync(func, args, kwargs) -> bool:
    name = getattr(func, "__name__", "")
    if name in _READS:
        return True
    if name == "repeat_interleave":  # with per-element counts, the output size is read back
        return len(args) > 1 and isinstance(args[1], torch.Tensor) or isinstance(kwargs.get("repeats"), torch.Tensor)
    if name == "__getitem__" and len(args) > 1:  # a boolean mask's result size is read back
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)
    if name == "to":  # to the host
        target = [a for a in args[1:] if isinstance(a, (str, torch.device))] + [kwargs.get("device")]
        return any(t is not None and torch.device(t).type == "cpu" and args[0].device.type != "cpu" for t in target)
    return False


class HostSyncs(TorchFunctionMode):
    """`with HostSyncs() as syncs:` ... `syncs.count`, `syncs.sites` (file:line -> calls)."""

    def __init__(self):
        super().__init__()
        self.count = 0  # reads back from the device
        self.uploads = 0  # tensors made from Python data
        self.sites: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        upload = getattr(func, "__name__", "") in _UPLOADS and not isinstance(args[0] if args else None, torch.Tensor)
        if upload or _is_sync(func, args, kwargs):
            self.uploads += upload
            self.count += not upload
            frame = next((f for f in reversed(traceback.extract_stack()[:-1]) if "/robench/" in f.filename), None)
            self.sites[f"{frame.filename.split('/robench/')[-1]}:{frame.lineno} {getattr(func, '__name__', func)}"
                       if frame else getattr(func, "__name__", str(func))] += 1
        return func(*args, **kwargs)
