"""The CPU emulation of CUDA's division by a Python number (tests/cuda_arith.py) really is CUDA's
rule, and the corruptions' exact division survives it."""

import numpy as np
import pytest
import torch
from cuda_arith import CudaScalarDivision

from robench.corruptions._ops import exact_div, to_unit


def test_scalar_division_becomes_multiplication_by_the_float32_reciprocal():
    x = torch.arange(256, dtype=torch.float32)
    with CudaScalarDivision() as mode:
        emulated = x / 255.0
        in_place = x.clone().div_(255)
        by_tensor = x / torch.tensor(255.0)  # a device tensor is divided, as on CUDA
    expected = torch.from_numpy(np.arange(256, dtype=np.float32) * (np.float32(1) / np.float32(255)))
    assert torch.equal(emulated, expected) and torch.equal(in_place, expected)
    assert torch.equal(by_tensor, x / 255.0)
    assert not torch.equal(emulated, x / 255.0)  # the rule differs from division on some values
    assert mode.calls == 2


def test_float64_uses_the_float64_reciprocal_and_rounding_modes_follow_aten():
    x = torch.arange(1000, dtype=torch.float64)
    with CudaScalarDivision():
        assert torch.equal(x / 6.0, x * (1.0 / 6.0))
        assert torch.equal(torch.div(x, 7.0, rounding_mode="trunc"), torch.trunc(x * (1.0 / 7.0)))
        assert torch.equal(torch.div(x, 7.0, rounding_mode="floor"), torch.div(x, 7.0, rounding_mode="floor"))
        ints = torch.arange(10)
        assert torch.equal(torch.div(ints, 3, rounding_mode="floor"), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_div_and_to_unit_are_division_under_cudas_rule(dtype):
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    with CudaScalarDivision():
        unit = to_unit(levels, dtype)
        sixths = exact_div(torch.arange(100, dtype=dtype), 6.0)
    assert torch.equal(unit, levels.to(dtype) / 255.0)
    assert torch.equal(sixths, torch.arange(100, dtype=dtype) / 6.0)
    with CudaScalarDivision():  # what to_unit was: 255 / 255. != 1 somewhere under CUDA's rule
        naive = levels.to(dtype) / 255.0
    assert not torch.equal(naive, unit)


def test_zoom_blur_pins_full_fp32_matmul_and_restores_the_setting():
    """Under `set_float32_matmul_precision("high")` (TF32 on CUDA), zoom_blur's float32 products
    still run at IEEE precision, and the process's choice is back afterwards."""
    from torch.overrides import TorchFunctionMode

    from robench.corruptions import corrupt

    seen = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in ("__matmul__", "matmul") and args[0].dtype == torch.float32:
                seen.append(torch.backends.cuda.matmul.fp32_precision)
            return func(*args, **(kwargs or {}))

    saved = torch.backends.cuda.matmul.fp32_precision
    try:
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        with Record():
            corrupt(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8), "zoom_blur", 3)
        assert seen and set(seen) == {"ieee"}
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    finally:
        torch.backends.cuda.matmul.fp32_precision = saved


def test_contrasts_sequential_sum_is_numpys_order_on_every_device(monkeypatch):
    """The loop that GPUs use gives the CPU's cumsum order bit for bit, and the order matters
    (a pairwise sum differs in the last bit somewhere)."""
    from robench.corruptions import digital

    x = torch.randint(0, 256, (64, 3, 1024), generator=torch.Generator().manual_seed(0)).double() / 255
    expected = torch.from_numpy(np.cumsum(x.numpy(), axis=2)[:, :, -1])
    assert torch.equal(digital.sequential_sum(x), expected)
    monkeypatch.setattr(digital, "_sequential_cumsum", lambda device: False)
    assert torch.equal(digital.sequential_sum(x), expected)
    assert not torch.equal(x.sum(2), expected)
