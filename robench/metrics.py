"""What a model gets right: top-1 counts over a test set, computed on the device."""

from __future__ import annotations

import torch

from robench.runs import autocast


@torch.no_grad()
def count_correct(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> int:
    """Top-1 correct predictions of `model` over `images` (uint8 or float in [0, 1]), in batches
    moved to `device`. The count stays on the device until the end: one host sync per call."""
    device = torch.device(device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size].to(device, non_blocking=True)
        with autocast(device):
            predictions = model(batch).argmax(1)
        correct += (predictions == labels[start:start + batch_size].to(device)).sum()
    return int(correct)
