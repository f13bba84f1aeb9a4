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
from robench.report.tidy import CALIBRATION

if TYPE_CHECKING:  # pragma: no cover
    from robench.report.leaderboard import Report

# The leaderboard's calibration columns (mean over the 75 standard cells), when the CSVs have them.
BOARD_CALIBRATION = ("rms_ce", "ece", "nll")


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


def display_tables(report: Report) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Each view as (header, rows of strings), what md, html and latex print."""
    board = report.leaderboard
    show = lambda c: c in board.columns  # noqa: E731
    grouped = report.grouped and bool((board["size"] > 1).any())
    meta = ["run", "model", "policy", "dataset", "source", "n"] + (["frost_textures"] if show("frost_textures") else [])
    if grouped:
        meta.append("seeds")
    header = ["rank"] + [("frost" if c == "frost_textures" else c) for c in meta] + ["clean", "mCE", "extra"]
    metrics = [("clean", None), ("mCE", len(STANDARD_CELLS)), ("extra", len(EXTRA_CELLS))]
    if report.baseline:
        header += ["norm. mCE", "rel. mCE", "Δ mCE"]
        metrics += [("norm. mCE", None), ("rel. mCE", None)]
    calib = [CALIBRATION[c][0] for c in BOARD_CALIBRATION if CALIBRATION[c][0] in report.calibration]
    header += calib + ["status"]
    views = {}
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
    views["leaderboard"] = (header, rows)
    ident = ["run", "dataset", "source"]
    views["corruptions"] = (ident + [short_name(c) for c in CORRUPTIONS],
                            [[_text(r[c]) for c in ident] + [_display(r, short_name(c), 5) for c in CORRUPTIONS]
                             for _, r in board.iterrows() if r["source"] != "-"])
    views["severities"] = (ident + ["clean"] + [f"s{s}" for s in SEVERITIES],
                           [[_text(r[c]) for c in ident] + [_display(r, "clean", None)]
                            + [_display(r, f"s{s}", 15) for s in SEVERITIES]
                            for _, r in board.iterrows() if r["source"] != "-"])
    return views


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


TITLES = {"leaderboard": "Leaderboard", "corruptions": "Error per corruption (mean over severities 1-5)",
          "severities": "Mean error over the 15 standard corruptions, per severity"}


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
    return text


def is_number(text: str) -> bool:
    head = text.split(" ")[0]
    try:
        float(head)
        return True
    except ValueError:
        return text in ("-", "", "baseline") or text.startswith("incomplete")
