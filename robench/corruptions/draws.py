"""Random draws of the corruptions, from one generator or from one generator per chunk of images.

The eval protocol gives each 500-image chunk its own seed (docs/protocol.md), so an image's
corruption does not depend on how many images are corrupted at once. Calling a corruption once
per chunk keeps that, but on a GPU a 500-image call is too small to fill the device. `Streams`
lifts the limit: one call corrupts many chunks, and every draw of shape (N, ...) is made chunk
by chunk, each chunk from its own generator, in the order the function makes its draws. Every
corruption draws only tensors whose first dimension is the image, a fixed number of times, so a
chunk receives exactly the numbers it would receive alone: the result of one call over k chunks
equals the k per-chunk calls concatenated, bit for bit (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch


@dataclass(frozen=True)
class Streams:
    """Consecutive chunks of a batch, `sizes[k]` images drawing from `generators[k]`."""

    generators: Sequence[torch.Generator]
    sizes: Sequence[int]

    def __post_init__(self):
        if len(self.generators) != len(self.sizes):
            raise ValueError("one generator per chunk")


Source = Union[torch.Generator, Streams]


def _draw(source: Source, shape: Sequence[int], make) -> torch.Tensor:
    if isinstance(source, torch.Generator):
        return make(tuple(shape), source)
    if shape[0] != sum(source.sizes):
        raise ValueError(f"a draw of {shape[0]} rows from streams over {sum(source.sizes)} images")
    return torch.cat([make((size, *shape[1:]), g) for g, size in zip(source.generators, source.sizes)])


def rand(source: Source, shape: Sequence[int], *, device, dtype=torch.float32) -> torch.Tensor:
    """U[0, 1) of `shape`, whose first dimension is the image."""
    return _draw(source, shape, lambda s, g: torch.rand(s, generator=g, device=device, dtype=dtype))


def randn(source: Source, shape: Sequence[int], *, device, dtype=torch.float32) -> torch.Tensor:
    """N(0, 1) of `shape`, whose first dimension is the image."""
    return _draw(source, shape, lambda s, g: torch.randn(s, generator=g, device=device, dtype=dtype))


def randint(source: Source, high: int, shape: Sequence[int], *, device) -> torch.Tensor:
    """Integers in [0, high) of `shape`, whose first dimension is the image."""
    return _draw(source, shape, lambda s, g: torch.randint(0, high, s, generator=g, device=device))
