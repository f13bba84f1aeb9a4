"""One -P cell: a model's stability on one perturbation's sequences (generated or released).

    row = evaluate_perturbation(forward, sequences, "rotate")
    # {"perturbation": "rotate", "n": 10000, "frames": 31, "flip_prob": ..., "top5_dist": ..., "zipf_dist": ...}

`forward` maps uint8 images (M, 3, H, W) to logits (M, C) (the caller's model with its input
convention and device); `sequences` yields (start, uint8 (B, T, 3, H, W)) chunks, e.g.
`perturbations.generated_sequences(...)` or `psets.OfficialPSet(...).sequences(...)`. Sums per
sequence are kept (`StabilityState`), so shards of the sequences can be merged exactly: the
official numbers are means over sequences.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from robench.eval import stability

KEYS = ("flip_prob", "top5_dist", "zipf_dist")


class StabilityState:
    """Running sums of the per-sequence values of one perturbation (mergeable across shards)."""

    def __init__(self, perturbation: str, difficulty: int = 1):
        self.perturbation, self.difficulty = perturbation, difficulty
        self.n, self.frames = 0, None
        self.sums = dict.fromkeys(KEYS, 0.0)

    def update(self, logits: torch.Tensor) -> None:
        """logits (B, T, C) of B whole sequences."""
        if self.frames is not None and logits.shape[1] != self.frames:
            raise ValueError(f"{self.perturbation}: sequences of {logits.shape[1]} and {self.frames} frames")
        self.frames = logits.shape[1]
        stats = stability.sequence_stats(logits.float(), self.perturbation, self.difficulty)
        for key in KEYS:
            self.sums[key] += float(stats[key].sum())
        self.n += logits.shape[0]

    def merge(self, other: "StabilityState") -> None:
        self.n += other.n
        self.frames = self.frames or other.frames
        for key in KEYS:
            self.sums[key] += other.sums[key]

    def result(self) -> dict:
        if self.n == 0:
            raise ValueError(f"{self.perturbation}: no sequences were evaluated")
        row = {"perturbation": self.perturbation, "n": self.n, "frames": self.frames}
        row.update({key: self.sums[key] / self.n for key in KEYS})
        return row


@torch.no_grad()
def evaluate_perturbation(forward: Callable[[torch.Tensor], torch.Tensor],
                          sequences: Iterable[tuple[int, torch.Tensor]], perturbation: str,
                          difficulty: int = 1, frames_per_call: int | None = None) -> dict:
    """The row of one perturbation: n sequences, frames, and the means over sequences of the flip
    probability, top-5 distance and Zipf distance (the official script prints the first and their
    mean over the ten perturbations, mFP). `frames_per_call` cuts each chunk's frames into
    forward passes of at most that many images (default: the whole chunk at once)."""
    return measure_perturbation(forward, sequences, perturbation, difficulty, frames_per_call).result()


@torch.no_grad()
def measure_perturbation(forward: Callable[[torch.Tensor], torch.Tensor],
                         sequences: Iterable[tuple[int, torch.Tensor]], perturbation: str,
                         difficulty: int = 1, frames_per_call: int | None = None) -> StabilityState:
    """The sums behind `evaluate_perturbation`'s row, mergeable with other shards' (`merge`)."""
    state = StabilityState(perturbation, difficulty)
    for _, chunk in sequences:
        b, t = chunk.shape[:2]
        frames = chunk.reshape(b * t, *chunk.shape[2:])
        step = frames_per_call or frames.shape[0]
        logits = torch.cat([forward(frames[i:i + step]) for i in range(0, frames.shape[0], step)])
        state.update(logits.reshape(b, t, -1))
    return state
