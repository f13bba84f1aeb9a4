"""What a model gets right: top-1 counts over a test set, computed on the device."""

from __future__ import annotations

import torch

from robench.runs import full_fp32


@torch.no_grad()
def correct_on_device(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """Top-1 correct predictions of `model` over `images` (uint8 or float in [0, 1]), in batches
    moved to `device`, as a 0-dim tensor on the device (nothing is read back).

    The logits are computed in float32 at full precision, also under a caller's autocast and with
    TF32 allowed: a bf16 (or TF32) argmax resolves near-ties differently, so error rates on a GPU
    would not be comparable with the CPU's."""
    device = torch.device(device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    with torch.autocast(device.type, enabled=False), full_fp32():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            predictions = model(batch).float().argmax(1)
            correct += (predictions == labels[start:start + batch_size].to(device)).sum()
    return correct


def count_correct(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> int:
    """`correct_on_device` read back: one host sync per call."""
    return int(correct_on_device(model, images, labels, batch_size, device))
