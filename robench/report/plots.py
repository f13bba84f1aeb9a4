"""The report's figures (matplotlib, Agg backend, imported only when plotting).

Each plot is one function of a Report that returns a Figure; PLOTS names them. Lines and bands come
from the report's per-evaluation table, so a group of seeds is drawn as its mean with a band of
± one standard deviation over its seeds.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from robench.corruptions.protocol import CORRUPTIONS, SEVERITIES, short_name
from robench.errors import RobenchError
from robench.registry import Registry
from robench.runfolder.files import atomic_write_bytes

PLOTS = Registry("plot")
DPI = 110


def check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RobenchError("plots need matplotlib: pip install 'robench[plot]'") from None


def _pyplot():
    check_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rows(report):
    """(label, evaluations of the row) for each evaluated leaderboard row, in the leaderboard's order."""
    per_eval = report.per_eval
    out = []
    for _, row in report.leaderboard.iterrows():
        members = per_eval[per_eval["group"] == row["group"]]
        if not members.empty:
            label = f"{row['run']} ({row['dataset']}, {row['source']})"
            out.append((label + (f" [{len(members)} seeds]" if len(members) > 1 else ""), members))
    return out


def _band(ax, xs, members, columns, label):
    values = members[columns].to_numpy(dtype=float)
    complete = values[np.isfinite(values).all(axis=1)]
    if not len(complete):
        return False
    mean = complete.mean(axis=0)
    (line,) = ax.plot(xs, mean, marker="o", label=label)
    if len(complete) > 1:
        std = complete.std(axis=0, ddof=1)
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    return True


def _finish(fig, ax, title, xlabel, ylabel, legend=True):
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


@PLOTS.register("error-vs-severity", "mean error over the 15 standard corruptions per severity (band: ± std over seeds)")
def error_vs_severity(report):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=DPI)
    for label, members in _rows(report):
        _band(ax, list(range(6)), members, ["clean"] + [f"s{s}" for s in SEVERITIES], label)
    ax.set_xticks(range(6), ["clean"] + [str(s) for s in SEVERITIES])
    return _finish(fig, ax, "Error vs corruption severity", "severity",
                   "error over the 15 standard corruptions (%)")


@PLOTS.register("corruption-heatmap", "error per corruption (mean over severities), one row per run or group")
def corruption_heatmap(report):
    plt = _pyplot()
    rows = _rows(report)
    names = [short_name(c) for c in CORRUPTIONS]
    values = np.array([[members[n].mean() if members[n].notna().all() else np.nan for n in names]
                       for _, members in rows]).reshape(len(rows), len(names))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.55 * len(names) + 3), 2.4 + 0.45 * max(len(rows), 1)), dpi=DPI)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    for i in range(len(rows)):
        for j in range(len(names)):
            text = "-" if np.isnan(values[i, j]) else f"{values[i, j]:.1f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(values[i, j]) and values[i, j] > np.nanmean(values) else "black")
    fig.colorbar(image, ax=ax, label="error (%)")
    return _finish(fig, ax, "Error per corruption (mean over severities 1-5)", "corruption", "", legend=False)


@PLOTS.register("clean-vs-mce", "clean error against mCE, one point per run or group (bars: ± std over seeds)")
def clean_vs_mce(report):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8), dpi=DPI)
    for label, members in _rows(report):
        both = members[members["clean"].notna() & members["mCE"].notna()]
        if both.empty:
            continue
        sd = (lambda c: both[c].std(ddof=1)) if len(both) > 1 else (lambda c: 0.0)
        ax.errorbar(both["clean"].mean(), both["mCE"].mean(), xerr=sd("clean"), yerr=sd("mCE"), fmt="o", capsize=3,
                    label=label)
    return _finish(fig, ax, "Clean error vs mCE", "clean error (%)", "mCE (%)")


@PLOTS.register("calibration-vs-severity", "RMS calibration error (or ECE) per severity, when the eval CSVs have it")
def calibration_vs_severity(report):
    label = next((name for name in ("RMS-CE", "ECE") if name in report.calibration), None)
    if label is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=DPI)
    for row_label, members in _rows(report):
        _band(ax, list(range(6)), members, [f"{label} clean"] + [f"{label} s{s}" for s in SEVERITIES],
              row_label)
    ax.set_xticks(range(6), ["clean"] + [str(s) for s in SEVERITIES])
    return _finish(fig, ax, f"{label} vs corruption severity", "severity",
                   f"{label} over the 15 standard corruptions (%)")


@PLOTS.register("effective-robustness", "shifted vs clean accuracy on logit axes: the runs, the baseline's fitted "
                                        "line and y = x (with --effective-robustness)")
def effective_robustness(report):
    er = report.effective
    if er is None or not er.fits:
        return None
    from robench.report.effective import inverse, predict, transform

    plt = _pyplot()
    labels = list(er.fits)
    fig, axes = plt.subplots(1, len(labels), figsize=(6.0 * len(labels), 5.2), dpi=DPI, squeeze=False)
    for ax, label in zip(axes[0], labels):
        fit, points = er.fits[label], er.points[er.points["fit"] == label]
        values = np.concatenate([points["clean acc"], points["shifted acc"]])
        low, high = max(values.min() - 5, 0.5), min(values.max() + 5, 99.5)
        grid = np.linspace(low, high, 200)
        ax.plot(grid / 100, grid / 100, linestyle=":", color="gray", label="y = x")
        ax.plot(grid / 100, predict(grid, fit.slope, fit.intercept, er.link) / 100, color="black",
                label=f"{er.link} fit over {len(fit.baseline)} baseline runs")
        for is_base, style in ((True, dict(marker="o")), (False, dict(marker="s", facecolors="none"))):
            mine = points[points["baseline"] == is_base]
            if len(mine):
                ax.scatter(mine["clean acc"] / 100, mine["shifted acc"] / 100, label="baseline runs" if is_base
                           else "other runs", edgecolors="C0" if is_base else "C3", **style)
        for _, r in points.iterrows():
            ax.annotate(r["run"], (r["clean acc"] / 100, r["shifted acc"] / 100), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if er.link == "logit":
            ax.set_xscale("logit")
            ax.set_yscale("logit")
        else:  # matplotlib has no probit scale: a function scale of the same transform
            functions = (lambda v: transform(100 * np.asarray(v), "probit"), lambda t: inverse(t, "probit") / 100)
            ax.set_xscale("function", functions=functions)
            ax.set_yscale("function", functions=functions)
        ax.set_xlim(low / 100, high / 100)
        ax.set_ylim(low / 100, high / 100)
        ticks = [t / 100 for t in (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99) if low <= t <= high]
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        percent = plt.FuncFormatter(lambda v, _: f"{100 * v:g}")
        ax.xaxis.set_major_formatter(percent)
        ax.yaxis.set_major_formatter(percent)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.yaxis.set_minor_formatter(plt.NullFormatter())
        _finish(fig, ax, label, "clean accuracy (%)", "shifted accuracy (%)")
    return fig


def png_bytes(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def figures(report) -> dict[str, bytes]:
    """Every plot that has something to show, as PNG bytes: name -> bytes."""
    out = {}
    for name in PLOTS.names():
        fig = PLOTS.get(name).factory(report)
        if fig is not None:
            out[name] = png_bytes(fig)
    return out


def write_plots(report, folder: Path) -> list[Path]:
    written = []
    for name, data in figures(report).items():
        path = Path(folder) / f"{name}.png"
        atomic_write_bytes(path, data)
        written.append(path)
    return written
