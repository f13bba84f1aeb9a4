"""Spread over seeds and 95 % intervals for differences, in plain Python (no scipy, no torch).

A difference between two groups of runs is paired by seed when both groups hold runs of exactly the
same seeds (seed k of one against seed k of the other: the same initialisation and data order), and
Welch's unequal-variance t interval otherwise. Both use Student's t quantile, computed here from the
regularised incomplete beta function because the report must not depend on scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CONFIDENCE = 0.95


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1, None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df (not necessarily integer) degrees of freedom, by bisection."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


@dataclass
class Difference:
    """mean(a) - mean(b) with the half-width of its 95 % interval (None when it cannot be estimated)."""

    mean: float
    half_width: float | None
    method: str  # "paired" | "welch" | "single" (a group of one run: no interval)
    n: int  # pairs (paired) or the smaller group's size


def paired_difference(a: list[float], b: list[float]) -> Difference:
    """a[i] and b[i] come from the same seed."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean, std = mean_std(diffs)
    if std is None:
        return Difference(mean, None, "single", len(diffs))
    half = t_quantile(0.5 + CONFIDENCE / 2, len(diffs) - 1) * std / math.sqrt(len(diffs))
    return Difference(mean, half, "paired", len(diffs))


def welch_difference(a: list[float], b: list[float]) -> Difference:
    """Welch's t interval: unequal variances, Welch-Satterthwaite degrees of freedom."""
    (mean_a, sd_a), (mean_b, sd_b) = mean_std(a), mean_std(b)
    if sd_a is None or sd_b is None:
        return Difference(mean_a - mean_b, None, "single", min(len(a), len(b)))
    va, vb = sd_a ** 2 / len(a), sd_b ** 2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(mean_a - mean_b, 0.0, "welch", min(len(a), len(b)))
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return Difference(mean_a - mean_b, t_quantile(0.5 + CONFIDENCE / 2, df) * se, "welch", min(len(a), len(b)))


def difference(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> Difference:
    """(seed, value) pairs of two groups: paired when each group has one run per seed and both have
    the same seeds, Welch otherwise."""
    seeds_a, seeds_b = [s for s, _ in a], [s for s, _ in b]
    if len(set(seeds_a)) == len(a) and sorted(seeds_a) == sorted(seeds_b):
        a, b = sorted(a), sorted(b)
        return paired_difference([v for _, v in a], [v for _, v in b])
    return welch_difference([v for _, v in a], [v for _, v in b])
