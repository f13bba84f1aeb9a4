"""Effective robustness (Taori et al., NeurIPS 2020, "Measuring robustness to natural distribution
shifts in image classification"): how much more accurate a model is on a shifted test set than the
models of a baseline set with its clean accuracy are.

Over the baseline runs, fit a line y = a * x + b in logit space (x, y: clean and shifted accuracy as
fractions, transformed by logit, or probit with link="probit"), by least squares of y on x. A run's
effective robustness is its shifted accuracy minus the line's prediction at its clean accuracy,
both transformed back: ER = y - link^-1(a * link(x) + b), in accuracy points (%).

The 95 % interval resamples the baseline runs: 1000 bootstrap samples of the baseline set (with
replacement, numpy's default_rng(0): the same report gives the same interval), each refitted, and
the 2.5th and 97.5th percentiles of each run's ER over them. It says how much ER depends on which
models happen to form the baseline, not how precise each accuracy is (per-image predictions are not
in the eval CSVs; with 10,000 test images that part is about ±1 point for a single accuracy, see
docs/metrics.md). Samples whose runs all have one clean accuracy cannot be fitted and are skipped;
with fewer than 3 baseline runs there is no interval.

The shift (`--effective-robustness`): c (the mean accuracy over the 15 -C corruptions x 5
severities, 100 - mCE), c-bar (100 - the C-bar error), or a dataset name such as cifar10.1: the run's
clean accuracy on its evaluation of that dataset. Imports numpy and pandas, never torch or scipy.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from robench.corruptions.protocol import PROTOCOLS
from robench.errors import RobenchError
from robench.report.benchmarks import CBAR_LABEL as CBAR_COLUMN

LINKS = ("logit", "probit")
RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
CLIP = 1e-4  # accuracies of 0 or 100 % have no logit: fractions are clipped to [CLIP, 1 - CLIP]
_NORMAL = NormalDist()


def transform(accuracy, link: str) -> np.ndarray:
    """Accuracy in % -> logit or probit of the clipped fraction."""
    p = np.clip(np.asarray(accuracy, dtype=float) / 100.0, CLIP, 1 - CLIP)
    if link == "logit":
        return np.log(p / (1 - p))
    return np.vectorize(_NORMAL.inv_cdf, otypes=[float])(p)


def inverse(value, link: str) -> np.ndarray:
    """The transform back to accuracy in %."""
    value = np.asarray(value, dtype=float)
    if link == "logit":
        return 100.0 / (1.0 + np.exp(-value))
    return 100.0 * np.vectorize(_NORMAL.cdf, otypes=[float])(value)


def fit_line(x, y, link: str) -> tuple[float, float]:
    """(a, b) of the least-squares line link(y) = a * link(x) + b; x, y accuracies in %."""
    tx, ty = transform(x, link), transform(y, link)
    dx = tx - tx.mean()
    slope = float((dx * (ty - ty.mean())).sum() / (dx * dx).sum())
    return slope, float(ty.mean() - slope * tx.mean())


def predict(x, slope: float, intercept: float, link: str) -> np.ndarray:
    return inverse(slope * transform(x, link) + intercept, link)


@dataclass
class Fit:
    """One fitted line: the points it was fitted on and what they are."""

    label: str
    slope: float
    intercept: float
    baseline: list[str]
    resamples: int  # bootstrap samples that could be fitted


@dataclass
class Effective:
    shift: str
    link: str
    points: pd.DataFrame  # run, fit, baseline, clean acc, shifted acc, predicted, ER, ER low, ER high
    fits: dict[str, Fit]
    warnings: list[str] = field(default_factory=list)


def _test_set(row) -> str:
    subset = "" if row["subset"] == "all" else f", subset {row['subset']}"
    storage = "" if row["storage"] == "none" else f", storage {row['storage']}"
    return f"{row['protocol']}, {row['source']}, n={int(row['n'])}{subset}{storage}"


def shift_points(per_eval: pd.DataFrame, runs: pd.DataFrame, shift: str) -> pd.DataFrame:
    """One row per (run, fit): run, fit (what x and y are), x (clean accuracy), y (shifted accuracy)."""
    rows = []
    if shift in ("c", "c-bar"):
        column = "mCE" if shift == "c" else CBAR_COLUMN
        have = per_eval[per_eval["protocol"].isin(PROTOCOLS)] if shift == "c" else per_eval
        if column in have:
            have = have[have["clean"].notna() & have[column].notna()]
            for _, r in have.iterrows():
                what = (f"mean -C accuracy ({_test_set(r)})" if shift == "c"
                        else "C-bar accuracy" + ("" if r["subset"] == "all" else f" (subset {r['subset']})"))
                rows.append(dict(run=r["run"], fit=f"{r['dataset']}: {what}", x=100 - r["clean"], y=100 - r[column]))
    else:
        trained_on = runs.set_index("run")["dataset"].to_dict()
        clean = per_eval[per_eval["clean"].notna()]
        for run, mine in clean.groupby("run", sort=True):
            home = mine[mine["dataset"] == trained_on.get(run)]
            away = mine[mine["dataset"] == shift]
            if len(home) and len(away):
                rows.append(dict(run=run, fit=f"{trained_on[run]} -> {shift} accuracy",
                                 x=100 - float(home["clean"].iloc[0]), y=100 - float(away["clean"].iloc[0])))
    points = pd.DataFrame(rows, columns=["run", "fit", "x", "y"]).drop_duplicates(["run", "fit"])
    if points.empty:
        what = {"c": "a complete -C evaluation (all 75 cells) and a clean error",
                "c-bar": "a complete C-bar evaluation (all 50 cells) and a clean error"}.get(
            shift, f"an evaluation on {shift} and one on the dataset it was trained on")
        raise RobenchError(f"--effective-robustness {shift}: no run has {what}; evaluate the runs first, or choose "
                           f"another shift (c, c-bar, or a dataset such as cifar10.1)")
    return points.reset_index(drop=True)


def _chosen(names, spec: str | None) -> np.ndarray:
    """Which runs form the baseline set: names or globs, comma-separated (None: all)."""
    if not spec:
        return np.ones(len(names), dtype=bool)
    patterns = [p.strip() for p in str(spec).split(",") if p.strip()]
    return np.array([any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in names], dtype=bool)


def _bootstrap(x, y, base: np.ndarray, link: str, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """Percentile interval of every point's ER over RESAMPLES resamples of the baseline points."""
    bx, by = x[base], y[base]
    k = len(bx)
    if k < 3:
        return np.full(len(x), np.nan), np.full(len(x), np.nan), 0
    samples = []
    for _ in range(RESAMPLES):
        pick = rng.integers(0, k, size=k)
        if len(np.unique(bx[pick])) < 2:
            continue
        a, b = fit_line(bx[pick], by[pick], link)
        samples.append(y - predict(x, a, b, link))
    if not samples:
        return np.full(len(x), np.nan), np.full(len(x), np.nan), 0
    samples = np.array(samples)
    tail = 100 * (1 - CONFIDENCE) / 2
    return np.percentile(samples, tail, axis=0), np.percentile(samples, 100 - tail, axis=0), len(samples)


def effective_robustness(per_eval: pd.DataFrame, runs: pd.DataFrame, shift: str, baseline: str | None = None,
                         link: str = "logit") -> Effective:
    """Every run's effective robustness against `shift`, a line fitted per kind of point (dataset,
    test set) over the baseline runs among them."""
    if link not in LINKS:
        raise RobenchError(f"unknown --er-link '{link}'; choose one of: {', '.join(LINKS)}")
    points = shift_points(per_eval, runs, shift)
    points["baseline"] = _chosen(points["run"], baseline)
    if not points["baseline"].any():
        raise RobenchError(f"--er-baseline '{baseline}' matches none of the runs with a point for "
                           f"--effective-robustness {shift} ({', '.join(sorted(set(points['run'])))})")
    rng = np.random.default_rng(SEED)
    fits, warnings, parts = {}, [], []
    for label, mine in points.groupby("fit", sort=True):
        mine = mine.copy()
        x, y, base = mine["x"].to_numpy(), mine["y"].to_numpy(), mine["baseline"].to_numpy()
        mine["predicted"] = mine["ER"] = mine["ER low"] = mine["ER high"] = np.nan
        if len(np.unique(x[base])) < 2:
            warnings.append(f"effective robustness, {label}: the baseline needs runs of at least two different "
                            f"clean accuracies ({int(base.sum())} given); no line, no ER")
        else:
            a, b = fit_line(x[base], y[base], link)
            mine["predicted"] = predict(x, a, b, link)
            mine["ER"] = y - mine["predicted"].to_numpy()
            low, high, used = _bootstrap(x, y, base, link, rng)
            mine["ER low"], mine["ER high"] = low, high
            fits[label] = Fit(label, a, b, list(mine["run"][base]), used)
        parts.append(mine)
    table = pd.concat(parts).rename(columns={"x": "clean acc", "y": "shifted acc"}).reset_index(drop=True)
    return Effective(shift, link, table, fits, warnings)
