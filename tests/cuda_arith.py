"""CUDA's arithmetic for division by a Python number, emulated on the CPU.

On CUDA, ATen computes `tensor / python_number` (any true division whose divisor is a CPU scalar)
as a multiplication by the reciprocal, taken in the operation's math type: float32 for float32
(and half, bfloat16) tensors, float64 for float64 ones. Rounding mode 'trunc' does the same
(`trunc(a * (1/b))`); mode 'floor' computes `(a - fmod(a, b)) * (1/b)` and then corrects the
floor. The CPU divides. `CudaScalarDivision` turns the CPU's division into CUDA's, so the
golden-file tests can prove on the CPU that the corruptions stay bit-exact on a GPU.

A 0-dim tensor divisor is treated as a device tensor (true division): on CUDA that is what a
divisor made with `torch.tensor(..., device=x.device)` or `torch.full((), ...)` gets.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

_DIVISIONS = {torch.div, torch.divide, torch.true_divide, torch.Tensor.div, torch.Tensor.divide,
              torch.Tensor.true_divide, torch.Tensor.__truediv__, torch.Tensor.div_, torch.Tensor.divide_,
              torch.Tensor.true_divide_, torch.Tensor.__itruediv__}
_IN_PLACE = {torch.Tensor.div_, torch.Tensor.divide_, torch.Tensor.true_divide_, torch.Tensor.__itruediv__}


def _reciprocal(b: float, dtype: torch.dtype) -> float:
    """1 / b in CUDA's math type for `dtype` (a Python float that holds it exactly)."""
    if dtype == torch.float64:
        return 1.0 / float(b)
    return float(np.float32(1.0) / np.float32(b))


class CudaScalarDivision(TorchFunctionMode):
    """Inside `with CudaScalarDivision():`, floating division by a Python number is CUDA's."""

    def __init__(self):
        super().__init__()
        self.calls = 0  # how many divisions were rewritten (a test checks the mode is really used)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _DIVISIONS and len(args) >= 2 and isinstance(args[0], torch.Tensor):
            a, b = args[0], args[1]
            mode = kwargs.pop("rounding_mode", None)
            if (isinstance(b, numbers.Real) and not isinstance(b, bool) and b != 0 and "out" not in kwargs
                    and len(args) == 2):
                dtype = torch.result_type(a, b)
                if dtype.is_floating_point:  # (the mode is off while this runs: the ops below are plain)
                    return self._divide(func, a, float(b), dtype, mode)
            if mode is not None:
                kwargs["rounding_mode"] = mode
        return func(*args, **kwargs)

    def _divide(self, func, a: torch.Tensor, b: float, dtype: torch.dtype, mode):
        self.calls += 1
        inv = _reciprocal(b, dtype)
        if mode is None:
            return a.mul_(inv) if func in _IN_PLACE else torch.mul(a, inv)
        x = a.to(dtype)
        if mode == "trunc":
            q = torch.trunc(x * inv)
        else:  # floor, as ATen's div_floor_floating with a scalar divisor
            mod = torch.fmod(x, b)
            q = (x - mod) * inv
            q = q - ((mod != 0) & ((b < 0) != (mod < 0))).to(dtype)
            floor = torch.floor(q)
            q = torch.where(q - floor > 0.5, floor + 1, floor)
        if func in _IN_PLACE:
            return a.copy_(q)
        return q
