"""Stability metrics of the -P benchmarks, as the official evaluation computes them (docs/perturbations.md).

A sequence is T frames of one image under a slowly growing perturbation. For each sequence the
official code (hendrycks/robustness, ImageNet-P/cifar-p-eval.py and ImageNet-P/test.py) compares
pairs of frames and averages over the pairs; the benchmark number is the mean over sequences:

- noise perturbations (their name contains "noise") compare every frame with the first one
  (frames 1..T-1 against frame 0): the noise is redrawn per frame, so consecutive frames are not
  "slowly changing";
- the others compare frame t with frame t + difficulty (difficulty 1 for CIFAR: consecutive frames).

Flip probability: the fraction of compared pairs whose top-1 predictions differ.
Ranking distances, from each frame's full ranking of the classes (rank 1 = largest logit; ties get
ranks in class-index order, scipy's `rankdata(-logits, method="ordinal")`): for a pair (a, b) let
sigma[k] be the rank in frame b of the class ranked k + 1 in frame a. Then
- top-5 distance: sum over k < 5 of |k - min(sigma[k] - 1, 5)| (the official `cum_sum_top5` form);
- Zipf distance: sum over k of |1/(k + 1) - 1/sigma[k]| / (k + 1).

Everything here is batched over sequences: inputs are (N, T) predictions or (N, T, C) logits or
ranks, results per sequence are (N,) float64 so that a caller streaming chunks of sequences can
add them up and divide by the number of sequences at the end (the official mean over sequences).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

TOP5 = 5  # the top-5 distance looks at the first five places of the first frame's ranking
MODES = ("top5", "zipf")


def is_noise(perturbation: str) -> bool:
    """The official rule (`'noise' in p`): noise sequences compare every frame with the first."""
    return "noise" in perturbation


def frame_pairs(frames: int, noise: bool, difficulty: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) frame indices of the compared pairs, in the official order.

    Noise: (0, t) for t = 1..T-1. Otherwise the official loops `for i in range(difficulty)` over the
    sub-sequences frames[i::difficulty], each compared consecutively: the pairs (t, t + difficulty)."""
    if frames < 2:
        raise ValueError(f"a sequence needs at least 2 frames, got {frames}")
    if noise:
        second = torch.arange(1, frames)
        return torch.zeros_like(second), second
    if difficulty < 1 or difficulty >= frames:
        raise ValueError(f"difficulty {difficulty} does not fit sequences of {frames} frames")
    first = torch.cat([torch.arange(i, frames - difficulty, difficulty) for i in range(difficulty)])
    return first, first + difficulty


def sequence_flips(predictions: torch.Tensor, noise: bool, difficulty: int = 1) -> torch.Tensor:
    """Per-sequence flip rate, (N,) float64, from top-1 predictions (N, T)."""
    first, second = frame_pairs(predictions.shape[1], noise, difficulty)
    first, second = first.to(predictions.device), second.to(predictions.device)
    return (predictions[:, first] != predictions[:, second]).to(torch.float64).mean(1)


def flip_prob(predictions: torch.Tensor, noise: bool, difficulty: int = 1) -> float:
    """The official `flip_prob`: the mean over sequences of each sequence's flip rate."""
    return float(sequence_flips(predictions, noise, difficulty).mean())


def ranks(logits: torch.Tensor) -> torch.Tensor:
    """Ranks 1..C of the classes in each frame (rank 1 = largest logit), ties broken by class index:
    scipy.stats.rankdata(-logits, method="ordinal") along the last dimension. int64, logits' shape."""
    order = torch.argsort(-logits, dim=-1, stable=True)  # classes from the best to the worst
    out = torch.empty_like(order)
    positions = torch.arange(1, logits.shape[-1] + 1, device=logits.device).expand_as(order)
    return out.scatter_(-1, order, positions)


def _distances(sigma: torch.Tensor, mode: str) -> torch.Tensor:
    """dist(sigma, mode) of the official code over the last dimension of sigma (ranks, 1-based)."""
    classes = sigma.shape[-1]
    if mode == "top5":
        if classes <= TOP5:
            raise ValueError(f"the top-5 distance needs more than {TOP5} classes, got {classes}")
        places = torch.arange(TOP5, device=sigma.device)
        return (places - (sigma[..., :TOP5] - 1).clamp(max=TOP5)).abs().sum(-1).to(torch.float64)
    if mode == "zipf":
        recip = 1.0 / torch.arange(1, classes + 1, device=sigma.device, dtype=torch.float64)
        return ((recip - 1.0 / sigma.to(torch.float64)).abs() * recip).sum(-1)
    raise ValueError(f"unknown ranking distance {mode!r}; choose one of {MODES}")


def sequence_ranking_dist(frame_ranks: torch.Tensor, noise: bool, mode: str = "top5", difficulty: int = 1) -> torch.Tensor:
    """Per-sequence mean ranking distance, (N,) float64, from ranks (N, T, C) (see `ranks`)."""
    first, second = frame_pairs(frame_ranks.shape[1], noise, difficulty)
    first, second = first.to(frame_ranks.device), second.to(frame_ranks.device)
    # The official perm2[argsort(perm1)]: frame b's ranks read in frame a's order of the classes.
    order_a = torch.argsort(frame_ranks[:, first], dim=-1)
    sigma = frame_ranks[:, second].gather(-1, order_a)
    return _distances(sigma, mode).mean(1)


def ranking_dist(frame_ranks: torch.Tensor, noise: bool, mode: str = "top5", difficulty: int = 1) -> float:
    """The official `ranking_dist`: the mean over sequences of each sequence's mean distance."""
    return float(sequence_ranking_dist(frame_ranks, noise, mode, difficulty).mean())


def sequence_stats(logits: torch.Tensor, perturbation: str, difficulty: int = 1) -> dict[str, torch.Tensor]:
    """Per-sequence flip rate, top-5 and Zipf distances (each (N,) float64) from logits (N, T, C)."""
    noise = is_noise(perturbation)
    frame_ranks = ranks(logits)
    return {
        "flip_prob": sequence_flips(logits.argmax(-1), noise, difficulty),
        "top5_dist": sequence_ranking_dist(frame_ranks, noise, "top5", difficulty),
        "zipf_dist": sequence_ranking_dist(frame_ranks, noise, "zipf", difficulty),
    }


def means(rows: Sequence[Mapping[str, float]], perturbations: Sequence[str] | None = None) -> dict[str, float]:
    """mFP, mT5D and mZD: the plain means of the per-perturbation values over `perturbations` (all
    rows when None; a missing one is an error, a partial mean would not be the benchmark's)."""
    by_name = {row["perturbation"]: row for row in rows}
    names = list(perturbations) if perturbations is not None else list(by_name)
    missing = [name for name in names if name not in by_name]
    if missing or not names:
        raise ValueError(f"no stability row for {missing or 'any perturbation'}")
    mean = lambda key: sum(float(by_name[n][key]) for n in names) / len(names)  # noqa: E731
    return {"mFP": mean("flip_prob"), "mT5D": mean("top5_dist"), "mZD": mean("zipf_dist")}


def normalised(values: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float]:
    """ImageNet-P's convention: each perturbation's value divided by a baseline model's (AlexNet's in
    the paper), e.g. FR_p = FP_p / FP_p(AlexNet); mFR / mT5D are the means of these ratios. CIFAR-P
    defines no baseline: its papers and the official script report the unnormalised means."""
    return {name: values[name] / baseline[name] for name in values}
