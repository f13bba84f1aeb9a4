"""`robench report`: leaderboards from run folders, a pure function of the folders' files.

mCE follows the CIFAR convention of AugMix and RobustBench: the unnormalised mean error over the
15 standard corruptions x 5 severities. The 4 extra corruptions are reported apart. With a baseline
run, normalised CE_c = sum_s E_cs / sum_s E_cs(base) and relative CE_c = sum_s (E_cs - E_clean) /
sum_s (E_cs(base) - E_clean(base)), averaged over the 15 (the ImageNet-C definitions).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from robench.corruptions.protocol import CLEAN, EXTRA, SEVERITIES, STANDARD, short_name
from robench.errors import RobenchError
from robench.runfiles import (EVAL_DIR, RUN_JSON, atomic_write_bytes, atomic_write_text, policy_label, read_eval_csv,
                              read_json)


@dataclass
class Entry:
    """One evaluation of one run: the cells' errors and the run's description."""

    run: str
    model: str
    policy: str
    dataset: str
    source: str
    errors: dict[tuple[str, int], float]  # (corruption, severity) -> error %, CLEAN for clean
    frost_textures: str = ""  # which frost photographs the frost cells used: official | procedural | ""

    @property
    def clean(self) -> float | None:
        return self.errors.get(CLEAN)

    def corruption_error(self, corruption: str) -> float | None:
        """Mean error over the 5 severities, or None when a severity is missing."""
        values = [self.errors.get((corruption, s)) for s in SEVERITIES]
        return None if None in values else sum(values) / len(values)

    def mean_error(self, corruptions) -> float | None:
        """Mean over corruptions x 5 severities; None unless every cell is present."""
        per = [self.corruption_error(c) for c in corruptions]
        return None if None in per or not per else sum(per) / len(per)

    @property
    def mce(self) -> float | None:
        return self.mean_error(STANDARD)

    @property
    def extra_error(self) -> float | None:
        return self.mean_error(EXTRA)

    def severity_error(self, severity: int) -> float | None:
        values = [self.errors.get((c, severity)) for c in STANDARD]
        return None if None in values else sum(values) / len(values)


def normalised_mce(entry: Entry, baseline: Entry) -> float | None:
    ratios = []
    for c in STANDARD:
        ours = [entry.errors.get((c, s)) for s in SEVERITIES]
        base = [baseline.errors.get((c, s)) for s in SEVERITIES]
        if None in ours or None in base or sum(base) == 0:
            return None
        ratios.append(sum(ours) / sum(base))
    return 100 * sum(ratios) / len(ratios)


def relative_mce(entry: Entry, baseline: Entry) -> float | None:
    if entry.clean is None or baseline.clean is None:
        return None
    ratios = []
    for c in STANDARD:
        ours = [entry.errors.get((c, s)) for s in SEVERITIES]
        base = [baseline.errors.get((c, s)) for s in SEVERITIES]
        if None in ours or None in base:
            return None
        gap = sum(b - baseline.clean for b in base)
        if gap == 0:
            return None
        ratios.append(sum(o - entry.clean for o in ours) / gap)
    return 100 * sum(ratios) / len(ratios)


def collect(roots: list[Path]) -> list[Entry]:
    """Every (run folder, eval CSV) pair under the given folders (a root may itself be a run folder)."""
    entries = []
    for root in roots:
        if not Path(root).exists():
            raise RobenchError(f"{root} does not exist; give a results folder or run folders")
        run_dirs = sorted({p.parent for p in Path(root).rglob(RUN_JSON)})
        for run_dir in run_dirs:
            run = read_json(run_dir / RUN_JSON)
            for csv_path in sorted((run_dir / EVAL_DIR).glob("*.csv")):
                rows = read_eval_csv(csv_path)
                if not rows:
                    continue
                errors = {(r["corruption"], int(r["severity"])): float(r["error"]) for r in rows}
                frost = {r.get("frost_textures") or "" for r in rows if r["corruption"] == "frost"}
                policy = policy_label(run.get("policy", "?"), run.get("mix", "none"), bool(run.get("jsd")))
                entries.append(Entry(run=run.get("name", run_dir.name), model=run.get("model", "?"), policy=policy,
                                     dataset=rows[0]["dataset"], source=rows[0]["source"], errors=errors,
                                     frost_textures="+".join(sorted(frost - {""})) or ("?" if frost else "")))
    return entries


def frost_column(entries: list[Entry]) -> bool:
    """Show which frost textures each run used unless all used the official photographs (what the
    released C-sets were made with): a procedural frost column is not comparable with an official one."""
    return any(e.frost_textures not in ("", "official") for e in entries)


def mixed_frost_warning(entries: list[Entry]) -> str | None:
    """A sentence when runs of one dataset were ranked on different frost textures."""
    for dataset in sorted({e.dataset for e in entries}):
        kinds = {e.frost_textures for e in entries if e.dataset == dataset and e.frost_textures}
        if len(kinds) > 1:
            return (f"{dataset}: runs were evaluated with different frost textures ({', '.join(sorted(kinds))}); "
                    f"their frost errors (and mCE) are not comparable. Re-evaluate with --frost official.")
    return None


def _sort_key(entry: Entry):
    return (entry.dataset, entry.mce is None, entry.mce if entry.mce is not None else 0.0, entry.run)


def leaderboard(entries: list[Entry], baseline: str | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows) sorted by mCE, with normalised/relative mCE columns when a baseline is named."""
    base_by_key = {}
    if baseline:
        for e in entries:
            if e.run == baseline:
                base_by_key[(e.dataset, e.source)] = e
        if not base_by_key:
            raise RobenchError(f"baseline run '{baseline}' has no evaluation under the given folders")
    header = ["run", "model", "policy", "dataset", "source", "clean", "mCE", "extra"]
    if baseline:
        header += ["norm. mCE", "rel. mCE"]
    header += [short_name(c) for c in STANDARD + EXTRA]
    if frost_column(entries):
        header.append("frost textures")
    rows = []
    for e in sorted(entries, key=_sort_key):
        row = [e.run, e.model, e.policy, e.dataset, e.source, _fmt(e.clean), _fmt(e.mce), _fmt(e.extra_error)]
        if baseline:
            base = base_by_key.get((e.dataset, e.source))
            row += [_fmt(normalised_mce(e, base) if base else None), _fmt(relative_mce(e, base) if base else None)]
        row += [_fmt(e.corruption_error(c)) for c in STANDARD + EXTRA]
        if frost_column(entries):
            row.append(e.frost_textures or "-")
        rows.append(row)
    return header, rows


def severity_table(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "dataset", "source", "clean"] + [f"s{s}" for s in SEVERITIES]
    rows = [[e.run, e.dataset, e.source, _fmt(e.clean)] + [_fmt(e.severity_error(s)) for s in SEVERITIES]
            for e in sorted(entries, key=_sort_key)]
    return header, rows


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table, columns padded for reading as plain text too."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text == "-"


def csv_table(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def render(entries: list[Entry], baseline: str | None = None) -> str:
    """The markdown report: the leaderboard, then mean error over the 15 per severity."""
    if not entries:
        raise RobenchError("no evaluated runs found; run `robench eval <run folder>` first")
    board = markdown_table(*leaderboard(entries, baseline))
    severities = markdown_table(*severity_table(entries))
    note = ("Errors in %. mCE: mean over the 15 standard corruptions x 5 severities; extra: the 4 extra "
            "corruptions; per-corruption columns: mean over severities.")
    mixed = mixed_frost_warning(entries)
    if mixed:
        note += f"\n\n**Warning:** {mixed}"
    return f"## Leaderboard\n\n{board}\n\n{note}\n\n## Mean error over the 15 standard corruptions, per severity\n\n{severities}\n"


def write_outputs(entries: list[Entry], out: Path, baseline: str | None = None) -> None:
    out = Path(out)
    if out.suffix == ".md":
        atomic_write_text(out, render(entries, baseline))
    elif out.suffix == ".csv":
        atomic_write_text(out, csv_table(*leaderboard(entries, baseline)))
    else:
        raise RobenchError(f"--out must end in .md or .csv, got {out.name}")


def plot(entries: list[Entry], out: Path) -> None:
    """Per-severity error curves, one line per run (needs matplotlib: pip install 'robench[plot]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RobenchError("--plot needs matplotlib: pip install 'robench[plot]'") from None
    if Path(out).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise RobenchError(f"--plot must end in .png, .pdf or .svg, got {Path(out).name}")
    fig, ax = plt.subplots(figsize=(6, 4))
    for e in sorted(entries, key=_sort_key):
        ys = [e.clean] + [e.severity_error(s) for s in SEVERITIES]
        if None not in ys:
            ax.plot(range(6), ys, marker="o", label=f"{e.run} ({e.source})")
    ax.set_xticks(range(6), ["clean", "1", "2", "3", "4", "5"])
    ax.set_xlabel("severity")
    ax.set_ylabel("error over the 15 corruptions (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(out).suffix[1:])
    plt.close(fig)
    atomic_write_bytes(Path(out), buffer.getvalue())
