"""What a Report shows, as text: each value (`24.10`, `mean ± std (n)`, `incomplete (k/N)`), the
tables with their titles, and the notes under the leaderboard. Every format (robench.report.formats,
robench.report.html) renders these same strings.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from robench.corruptions.protocol import CORRUPTIONS, SEVERITIES, short_name
from robench.eval.cell import EXTRA_CELLS, STANDARD_CELLS
from robench.report.baselines import ALEXNET_COLUMNS, ALEXNET_PROTOCOL
from robench.report.benchmarks import CBAR, CBAR_LABEL, CBAR_SEVERITIES, P_PERTURBATIONS, STABILITY
from robench.report.tidy import CALIBRATION

if TYPE_CHECKING:  # pragma: no cover
    from robench.report.leaderboard import Report

# The leaderboard's calibration columns (mean over the 75 standard cells), when the CSVs have them.
BOARD_CALIBRATION = ("rms_ce", "ece", "nll")
# The other benchmarks' columns and the cells each mean needs.
CELLS = {CBAR_LABEL: len(CBAR) * len(CBAR_SEVERITIES), **{m: len(P_PERTURBATIONS) for m in STABILITY.values()}}


# ----------------------------------------------------------------------------- display


def fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.2f}"


def _display(row: pd.Series, metric: str, cells_needed: int | None) -> str:
    """'24.10', '24.10 ± 0.40 (3)', '24.10 (2 of 3)', 'incomplete (60/75)' or '-'."""
    mean, std, n = row.get(metric), row.get(f"{metric} std"), row.get(f"{metric} n")
    size = int(row.get("size", 1) or 1)
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        cells = row.get(f"{metric} cells")
        if cells_needed and cells is not None and not pd.isna(cells) and cells > 0:
            return f"incomplete ({int(cells)}/{cells_needed * size})"
        return "-"
    if size == 1:
        return fmt(mean)
    spread = f" ± {fmt(std)}" if std is not None and not pd.isna(std) else ""
    count = f"({int(n)})" if n == size else f"({int(n)} of {size})"
    return f"{fmt(mean)}{spread} {count}"


def _delta(row: pd.Series) -> str:
    mean, ci, method = row.get("Δ mCE"), row.get("Δ mCE ci"), row.get("Δ mCE method")
    if mean is None or pd.isna(mean):
        return "-"
    if method == "baseline":
        return "baseline"
    sign = "+" if mean > 0 else ""
    interval = f" ± {ci:.2f} ({method})" if ci is not None and not pd.isna(ci) else ""
    return f"{sign}{mean:.2f}{interval}"


# The header of the unnormalised mean error over the 15 x 5 cells in the ImageNet-C table, where
# "mCE" means the AlexNet-normalised one (CIFAR's tables call it mCE, as their papers do).
MEAN_ERROR = "mean error"


def _table_label(key: str) -> str:
    """'imagenet-c|robustbench-5k' -> 'imagenet-c, subset robustbench-5k'; the subset 'all' unsaid."""
    protocol, subset = key.split("|", 1)
    return protocol if subset == "all" else f"{protocol}, subset {subset}"


def _keys(report: Report) -> dict[str, str]:
    """Table key -> the suffix of its views' names: '' when there is one table."""
    tables = report.tables
    return {t: "" if len(tables) == 1 else f": {_table_label(t)}" for t in tables}


def _leaderboard(report: Report, board: pd.DataFrame, imagenet_c: bool) -> tuple[list[str], list[list[str]]]:
    show = lambda c: c in board.columns  # noqa: E731
    grouped = report.grouped and bool((report.leaderboard["size"] > 1).any())
    meta = ["run", "model", "policy", "dataset", "source", "n"] + (["frost_textures"] if show("frost_textures") else [])
    if grouped:
        meta.append("seeds")
    measured = lambda m: show(f"{m} cells") and bool((board[f"{m} cells"].fillna(0) > 0).any())  # noqa: E731
    metrics = [("clean", None), ("mCE", len(STANDARD_CELLS))]
    if imagenet_c:
        metrics += [(m, len(STANDARD_CELLS)) for m in ALEXNET_COLUMNS]
    metrics += [("extra", len(EXTRA_CELLS))]
    metrics += [(m, CELLS[m]) for m in report.others if measured(m)]
    header = ["rank"] + [("frost" if c == "frost_textures" else c) for c in meta]
    header += [MEAN_ERROR if (m == "mCE" and imagenet_c) else m for m, _ in metrics]
    if report.baseline:
        header += ["norm. mCE", "rel. mCE", "Δ mCE"]
        metrics += [("norm. mCE", None), ("rel. mCE", None)]
    calib = [CALIBRATION[c][0] for c in BOARD_CALIBRATION if CALIBRATION[c][0] in report.calibration]
    header += calib + ["status"]
    rows = []
    for _, r in board.iterrows():
        cells = ["" if pd.isna(r["rank"]) else str(int(r["rank"]))] + [_text(r.get(c)) for c in meta]
        cells += [_display(r, m, need) for m, need in metrics]
        if report.baseline:
            cells.append(_delta(r))
        cells += [_display(r, c, len(STANDARD_CELLS)) for c in calib]
        status = r.get("status")
        cells.append(status if isinstance(status, str) and status else "")
        rows.append(cells)
    return header, rows


def display_tables(report: Report) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each view as (header, rows of strings), what md, html and latex print: the leaderboard, error
    per corruption and per severity of each table (one per protocol and subset: 'leaderboard' when
    there is one, 'leaderboard: imagenet-c' ... when there are several), then effective robustness."""
    board = report.leaderboard
    suffixes = _keys(report)
    parts = {t: board[board["table"] == t] for t in suffixes}
    views = {}
    for table, suffix in suffixes.items():
        imagenet_c = table.split("|")[0] == ALEXNET_PROTOCOL
        views["leaderboard" + suffix] = _leaderboard(report, parts[table], imagenet_c)
    ident = ["run", "dataset", "source"]
    for table, suffix in suffixes.items():
        views["corruptions" + suffix] = (
            ident + [short_name(c) for c in CORRUPTIONS],
            [[_text(r[c]) for c in ident] + [_display(r, short_name(c), 5) for c in CORRUPTIONS]
             for _, r in parts[table].iterrows() if r["source"] != "-"])
    for table, suffix in suffixes.items():
        views["severities" + suffix] = (
            ident + ["clean"] + [f"s{s}" for s in SEVERITIES],
            [[_text(r[c]) for c in ident] + [_display(r, "clean", None)]
             + [_display(r, f"s{s}", 15) for s in SEVERITIES]
             for _, r in parts[table].iterrows() if r["source"] != "-"])
    if report.effective is not None:
        views["effective"] = effective_table(report.effective)
    return views


def effective_table(er) -> tuple[list[str], list[list[str]]]:
    header = ["run", "fit", "baseline", "clean acc", "shifted acc", "predicted", "ER", "ER 95 % interval"]
    rows = []
    for _, r in er.points.iterrows():
        interval = "-" if pd.isna(r["ER low"]) else f"[{fmt(r['ER low'])}, {fmt(r['ER high'])}]"
        sign = "+" if not pd.isna(r["ER"]) and r["ER"] > 0 else ""
        rows.append([r["run"], r["fit"], "yes" if r["baseline"] else "", fmt(r["clean acc"]), fmt(r["shifted acc"]),
                     fmt(r["predicted"]), sign + fmt(r["ER"]), interval])
    return header, rows


def effective_note(er) -> str:
    """The fitted lines, and what the interval covers."""
    lines = [f"{label}: {er.link}(y) = {fit.slope:.4f} · {er.link}(x) {'+' if fit.intercept >= 0 else '-'} "
             f"{abs(fit.intercept):.4f}, fitted over "
             f"{len(fit.baseline)} baseline runs" for label, fit in er.fits.items()]
    return ("Effective robustness (Taori et al. 2020): shifted accuracy minus the baseline line's prediction at the "
            "run's clean accuracy, in accuracy points (%). " + "; ".join(lines) + ". The 95 % interval resamples "
            "the baseline runs (1000 bootstrap samples, seed 0).")


def is_leaderboard(name: str) -> bool:
    return name == "leaderboard" or name.startswith("leaderboard:")


def title(name: str) -> str:
    """'leaderboard: imagenet-c' -> 'Leaderboard — imagenet-c'."""
    base, _, label = name.partition(": ")
    return TITLES[base] + (f" — {label}" if label else "")


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


TITLES = {"leaderboard": "Leaderboard", "corruptions": "Error per corruption (mean over severities 1-5)",
          "severities": "Mean error over the 15 standard corruptions, per severity",
          "effective": "Effective robustness"}


def notes(report: Report) -> str:
    text = ("Errors in %. mCE: mean over the 15 standard corruptions x 5 severities; extra: the 4 extra corruptions. "
            "A mean needs all of its cells: 'incomplete (k/N)' says how many it has.")
    if report.grouped and (report.leaderboard["size"] > 1).any():
        text += " Rows of several seeds: mean ± standard deviation (number of seeds)."
    if report.baseline:
        text += (f" Baseline: {report.baseline}; norm./rel. mCE in % of it; Δ mCE = mCE minus the baseline's, "
                 f"± the half-width of its 95 % interval (paired by seed when both have the same seeds, else Welch).")
    if report.calibration:
        text += (" Calibration (RMS-CE, ECE in %; NLL in nats): means over the "
                 f"{len(STANDARD_CELLS)} standard corrupted cells.")
    tables = report.tables
    if len(tables) > 1:
        text += (" One table per corruption protocol and image subset: their errors are not comparable, and no "
                 "rank spans two of them.")
    if any(t.split("|")[0] == ALEXNET_PROTOCOL for t in tables):
        text += (f" ImageNet-C: '{MEAN_ERROR}' is the unnormalised mean error over the 15 x 5 cells; mCE (AlexNet) = "
                 "100 · mean over the 15 of sum_s E_cs / sum_s E_cs(AlexNet), rel. mCE (AlexNet) likewise of the "
                 "errors minus the clean error, with AlexNet's published ImageNet-C errors (docs/metrics.md); the "
                 "table is sorted by mCE (AlexNet).")
    if any(t.split("|")[0] == "tiny-imagenet-c" for t in tables):
        text += (" Tiny-ImageNet-C has no published AlexNet baseline: its mCE is the unnormalised mean error "
                 "(normalise with --baseline RUN).")
    if CBAR_LABEL in report.others:
        text += f" {CBAR_LABEL}: mean over the 10 CIFAR-10-C-bar corruptions x 5 severities."
    if set(STABILITY.values()) & set(report.others):
        text += (" mFP: mean flip probability (in %), mT5D: mean top-5 distance (rank changes per frame pair, "
                 "as the official evaluation computes it), over the 10 CIFAR-10-P perturbations.")
    return text


def is_number(text: str) -> bool:
    head = text.split(" ")[0]
    try:
        float(head)
        return True
    except ValueError:
        return text in ("-", "", "baseline") or text.startswith("incomplete")
