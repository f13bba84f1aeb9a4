"""The 19 CIFAR-10-C corruptions as batched tensor programs.

`corrupt(images, name, severity, seed=0)` takes uint8 (N, 3, H, W) on any device and returns the
corrupted uint8 batch, same shape and device. Every image draws its own randomness from one
`torch.Generator` seeded with `seed` on the images' device, so the result is a pure function of
(images, name, severity, seed, device type). `robench eval` keys `seed` by fixed chunks of global
test-set indices, so image k is corrupted identically whatever the batch size.

What is reproduced from the official generator is described in docs/faithfulness.md; each
module states the deliberate deviations.
"""

from robench.corruptions.registry import CORRUPTIONS, EXTRA, STANDARD, corrupt, get_corruption

__all__ = ["CORRUPTIONS", "STANDARD", "EXTRA", "corrupt", "get_corruption"]
