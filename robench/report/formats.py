"""The formats a Report is written in (FORMATS: md, csv, json, html, latex), and `--out` by suffix.

What the tables say, as text, is robench.report.views; the numbers themselves are computed in
robench.report.leaderboard; nothing here computes a statistic.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from robench.corruptions.protocol import CORRUPTIONS, SEVERITIES, short_name
from robench.errors import RobenchError
from robench.registry import Registry
from robench.report.baselines import ALEXNET_COLUMNS, ALEXNET_PROTOCOL
from robench.report.benchmarks import DEFAULT_TABLE
from robench.report.views import (MEAN_ERROR, display_tables, effective_note, is_leaderboard, is_number, notes,
                                   title)
from robench.runfolder.files import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    from robench.report.leaderboard import Report

# ----------------------------------------------------------------------------- formats


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table, columns padded for reading as plain text too."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    numeric = [bool(rows) and all(is_number(r[i]) for r in rows) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def last_leaderboard(views) -> str:
    """The name of the last leaderboard view: the notes and warnings follow it."""
    return [name for name in views if is_leaderboard(name)][-1]


def render_markdown(report: Report) -> str:
    parts = []
    views = display_tables(report)
    for name, (header, rows) in views.items():
        if rows:
            parts.append(f"## {title(name)}\n\n{markdown_table(header, rows)}\n")
        if name == last_leaderboard(views):
            parts.append(notes(report) + "\n")
            parts += [f"**Warning:** {w}\n" for w in report.warnings]
        if name == "effective":
            parts.append(effective_note(report.effective) + "\n")
    return "\n".join(parts)


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    out = "".join(LATEX_ESCAPES.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$")


def latex_table(header: list[str], rows: list[list[str]], caption: str) -> str:
    """A booktabs table (\\usepackage{booktabs}): \\toprule, \\midrule, \\bottomrule, no vertical rules."""
    numeric = [bool(rows) and all(is_number(r[i]) for r in rows) for i in range(len(header))]
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
             r"\begin{tabular}{" + "".join("r" if n else "l" for n in numeric) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def render_latex(report: Report) -> str:
    parts = [f"% robench report: {notes(report)}"] + [f"% warning: {w}" for w in report.warnings]
    if report.effective is not None:
        parts.append(f"% {effective_note(report.effective)}")
    parts += [latex_table(h, r, title(name)) for name, (h, r) in display_tables(report).items() if r]
    return "\n\n".join(parts) + "\n"


def _only_default_table(report: Report) -> bool:
    return report.tables == ["|".join(DEFAULT_TABLE)]


def numeric_view(report: Report, name: str) -> pd.DataFrame:
    """A view with numbers, not strings (csv and json): each metric's mean, and with seed groups its
    '<metric> std' and '<metric> n'. With tables other than CIFAR's default (cifar10-c, all images),
    the columns protocol, subset and storage say which table a row is ranked in, and ImageNet-C rows
    hold their unnormalised mean error in 'mean error' (their 'mCE' is empty; 'mCE (AlexNet)' is
    their mCE): a column never holds two definitions."""
    if name == "effective":
        er = report.effective
        return er.points[["run", "fit", "baseline", "clean acc", "shifted acc", "predicted", "ER", "ER low",
                          "ER high"]]
    board = report.leaderboard
    ident = ["rank", "run", "runs", "model", "policy", "dataset", "source", "n", "seeds", "status"]
    ident += ["frost_textures"] if "frost_textures" in board else []
    tables = not _only_default_table(report)
    imagenet_c = tables and bool((board["protocol"] == ALEXNET_PROTOCOL).any())
    if tables:
        ident[ident.index("source") + 1:ident.index("source") + 1] = ["protocol", "subset", "storage"]
        board = board.copy()
    if imagenet_c:
        alexnet = board["protocol"] == ALEXNET_PROTOCOL
        for suffix in ("", " std", " n"):
            if f"mCE{suffix}" in board:
                board[f"{MEAN_ERROR}{suffix}"] = board[f"mCE{suffix}"].where(alexnet)
                board[f"mCE{suffix}"] = board[f"mCE{suffix}"].where(~alexnet)
    if name == "leaderboard":
        metrics = ["clean", "mCE"] + ([MEAN_ERROR, *ALEXNET_COLUMNS] if imagenet_c else []) + ["extra"]
        metrics += [m for m in report.others]
        metrics += ["norm. mCE", "rel. mCE"] if report.baseline else []
        metrics += [c for c in ("RMS-CE", "ECE", "NLL", "Brier") if c in report.calibration]
        extra = ["Δ mCE", "Δ mCE ci", "Δ mCE method"] if report.baseline else []
    elif name == "corruptions":
        metrics, extra = [short_name(c) for c in CORRUPTIONS], []
    else:
        metrics, extra = ["clean"] + [f"s{s}" for s in SEVERITIES], []
    columns = list(ident)
    for m in metrics:
        columns += [m] + ([f"{m} std", f"{m} n"] if report.grouped else [])
    out = board.reindex(columns=columns + extra)
    for column in out.columns:
        if column in ("rank", "n") or column.endswith(" n"):
            out[column] = out[column].astype("Int64")
    if name != "leaderboard":
        out = out[out["source"] != "-"]
    return out


def render_csv(report: Report) -> str:
    return numeric_view(report, "leaderboard").to_csv(index=False)


def render_json(report: Report) -> str:
    data = {name: json.loads(numeric_view(report, name).to_json(orient="records")) for name in report.views()}
    data["warnings"], data["notes"] = report.warnings, notes(report)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _render_html(report: Report) -> str:
    from robench.report.html import page

    return page(report)


# The --format choices: name -> renderer(report) -> text.
FORMATS = Registry("report format")
FORMATS.add("md", render_markdown, "markdown: the tables, notes and warnings (the default)")
FORMATS.add("csv", render_csv, "the leaderboard as CSV, numbers only ('<metric> std' and '<metric> n' columns)")
FORMATS.add("json", render_json, "every view as records, with the warnings and notes")
FORMATS.add("html", _render_html, "one self-contained page: sortable tables and embedded plots")
FORMATS.add("latex", render_latex, "booktabs tables for papers (\\usepackage{booktabs})")


def render(report: Report, fmt_name: str = "md") -> str:
    return FORMATS.get(fmt_name).factory(report)


OUT_SUFFIXES = {".md": "md", ".json": "json", ".html": "html", ".tex": "latex"}


def write_output(report: Report, out: Path) -> None:
    """By the file's suffix: the report as .md, .json, .html or .tex; the whole tidy table of cells
    as .csv or .parquet."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(out, report.cells.to_csv(index=False))
    elif suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RobenchError("--out FILE.parquet needs pyarrow: pip install pyarrow (or write FILE.csv)") from None
        buffer = io.BytesIO()
        report.cells.to_parquet(buffer, index=False)
        atomic_write_bytes(out, buffer.getvalue())
    elif suffix in OUT_SUFFIXES:
        atomic_write_text(out, render(report, OUT_SUFFIXES[suffix]))
    else:
        raise RobenchError(f"--out must end in .md, .html, .tex, .json (the report) or .csv, .parquet (every cell), "
                           f"got {out.name}")


def check_outputs(outs: list[Path]) -> None:
    """Refuse a bad --out before computing anything, so nothing is half-written."""
    for out in outs:
        if Path(out).suffix.lower() not in (*OUT_SUFFIXES, ".csv", ".parquet"):
            raise RobenchError(f"--out must end in .md, .html, .tex, .json (the report) or .csv, .parquet (every "
                               f"cell), got {Path(out).name}")
