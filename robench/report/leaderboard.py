"""`robench report`: leaderboards from run folders, a pure function of the folders' files.

Everything is computed from the tidy table of robench.report.tidy (one row per evaluated cell): the
cells of each evaluation (run, dataset, source) are pivoted into an array E[corruption, severity],
and every view is a reduction of it.

- mCE follows the CIFAR convention of AugMix and RobustBench: the unnormalised mean error over the
  15 standard corruptions x 5 severities. The 4 extra corruptions are reported apart.
- With a baseline, normalised CE_c = sum_s E_cs / sum_s E_cs(base) and relative CE_c =
  sum_s (E_cs - E_clean) / sum_s (E_cs(base) - E_clean(base)), averaged over the 15 (the
  ImageNet-C definitions: a mean of per-corruption ratios, not a ratio of totals).
- A value needs all of its cells: a run with a missing cell gets no mean (it is marked incomplete,
  with how many cells it has), never a mean over fewer cells.
- Runs that differ only in their seed form one row: mean ± standard deviation (n seeds).

What the views say as text is robench.report.views; what they look like (markdown, CSV, JSON,
HTML, LaTeX) is robench.report.formats and robench.report.html. Imports pandas and numpy, never
torch; matplotlib only when plotting (robench.report.plots).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from robench.config import ReportConfig
from robench.corruptions.protocol import CORRUPTIONS, SEVERITIES, STANDARD, short_name
from robench.errors import RobenchError
from robench.eval.cell import CLEAN, STANDARD_CELLS, grid
from robench.report import stats
from robench.report.formats import check_outputs, render, write_output
from robench.report.tidy import CALIBRATION, Results, find_run_dirs, load
from robench.report.views import TITLES

NOT_EVALUATED = "not evaluated"
TEST_SET = ["dataset", "source", "n", "frost_textures"]  # evaluations on different ones are not ranked together


# ----------------------------------------------------------------------------- one row per evaluation


def evaluations(cells: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """One row per (run, dataset, source) with its description, and E: array (evaluations, 19, 5) of
    errors (NaN where a cell is missing), plus the same array for each calibration column present."""
    keys = ["run", "dataset", "source"]
    if cells.empty:
        return pd.DataFrame(columns=keys), np.zeros((0, len(CORRUPTIONS), len(SEVERITIES))), {}
    grouped = cells.groupby(keys, sort=True)
    meta = grouped.agg(model=("model", "first"), policy=("policy", "first"), seed=("seed", "first"),
                       eval_seed=("eval_seed", "first"), n=("n", lambda s: int(s.mode().iloc[0])))
    frost = cells[cells["corruption"] == "frost"].groupby(keys)["frost_textures"].agg(
        lambda s: "+".join(sorted(set(s) - {""})) or "?")
    meta["frost_textures"] = frost.reindex(meta.index).fillna("")
    columns = pd.MultiIndex.from_tuples([CLEAN] + grid(CORRUPTIONS), names=["corruption", "severity"])
    indexed = cells.set_index(keys + ["corruption", "severity"])

    def cube(column):
        wide = indexed[column].unstack(["corruption", "severity"]).reindex(index=meta.index, columns=columns)
        values = wide.to_numpy(dtype=float)
        return values[:, 0], values[:, 1:].reshape(len(meta), len(CORRUPTIONS), len(SEVERITIES))

    meta["clean"], errors = cube("error")
    calibration = {}
    for column in CALIBRATION:
        if column in cells.columns:
            meta[f"clean {column}"], calibration[column] = cube(column)
    return meta.reset_index(), errors, calibration


def _flat(values: np.ndarray) -> np.ndarray:
    return values.reshape(values.shape[0], int(np.prod(values.shape[1:])))


def _mean_all(values: np.ndarray) -> np.ndarray:
    """Mean over every axis but the first; NaN as soon as one value is missing (never fewer cells)."""
    return _flat(values).mean(axis=1) if len(values) else np.zeros(0)


def scores(meta: pd.DataFrame, errors: np.ndarray, calibration: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per evaluation: clean, mCE, extra, CE per corruption, mean per severity, calibration means,
    and how many cells each mean has."""
    std, extra = errors[:, :len(STANDARD)], errors[:, len(STANDARD):]
    out = {}
    out["mCE"], out["extra"] = _mean_all(std), _mean_all(extra)
    out["mCE cells"] = np.isfinite(_flat(std)).sum(axis=1)
    out["extra cells"] = np.isfinite(_flat(extra)).sum(axis=1)
    for i, c in enumerate(CORRUPTIONS):
        out[short_name(c)] = errors[:, i].mean(axis=1)
        out[f"{short_name(c)} cells"] = np.isfinite(errors[:, i]).sum(axis=1)
    for j, s in enumerate(SEVERITIES):
        out[f"s{s}"] = std[:, :, j].mean(axis=1)
        out[f"s{s} cells"] = np.isfinite(std[:, :, j]).sum(axis=1)
    for column, values in calibration.items():
        label, scale = CALIBRATION[column]
        out[label] = scale * _mean_all(values[:, :len(STANDARD)])
        out[f"{label} cells"] = np.isfinite(_flat(values[:, :len(STANDARD)])).sum(axis=1)
        out[f"{label} clean"] = scale * meta[f"clean {column}"].to_numpy()
        for j, s in enumerate(SEVERITIES):
            out[f"{label} s{s}"] = scale * values[:, :len(STANDARD), j].mean(axis=1)
    return pd.concat([meta, pd.DataFrame(out, index=meta.index)], axis=1)


def normalised_mce(errors: np.ndarray, base: np.ndarray) -> np.ndarray:
    """100 x mean over the 15 of sum_s E_cs / sum_s E_cs(base); errors (N, 19, 5), base (19, 5)."""
    ours, theirs = errors[:, :len(STANDARD)].sum(axis=2), base[:len(STANDARD)].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(theirs > 0, ours / np.where(theirs > 0, theirs, 1.0), np.nan)
    return 100 * ratios.mean(axis=1)


def relative_mce(errors: np.ndarray, clean: np.ndarray, base: np.ndarray, base_clean: float) -> np.ndarray:
    """100 x mean over the 15 of sum_s (E_cs - E_clean) / sum_s (E_cs(base) - E_clean(base))."""
    ours = (errors[:, :len(STANDARD)] - clean[:, None, None]).sum(axis=2)
    theirs = (base[:len(STANDARD)] - base_clean).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(theirs != 0, ours / np.where(theirs != 0, theirs, 1.0), np.nan)
    return 100 * ratios.mean(axis=1)


# ----------------------------------------------------------------------------- groups of seeds


def _group_name(names: list[str]) -> str:
    """'r18-augmix-s0', 'r18-augmix-s1' -> 'r18-augmix'; otherwise the first name and how many more."""
    if len(names) == 1:
        return names[0]
    stems = {re.sub(r"[-_.]?s(?:eed)?[-_]?\d+$", "", n) for n in names}
    return stems.pop() if len(stems) == 1 and "" not in stems else f"{sorted(names)[0]} (+{len(names) - 1})"


def assign_groups(per_eval: pd.DataFrame, runs: pd.DataFrame, group: bool) -> pd.Series:
    """A group label per evaluation: runs of one recipe (config minus seed and name) evaluated on one
    test set are one group; with group=False every evaluation is its own."""
    if per_eval.empty:
        return pd.Series([], dtype=str)
    if not group:
        return per_eval["run"].astype(str) + "|" + per_eval["dataset"] + "|" + per_eval["source"]
    recipe = per_eval["run"].map(runs.set_index("run")["recipe"])
    return recipe.astype(str) + "|" + _key(per_eval, TEST_SET)


def _key(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The columns' values joined into one string per row (a hashable key for grouping)."""
    return frame[columns].astype(object).map(str).agg("|".join, axis=1)


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    """Numeric views (one row per group of seeds, or per run with group=False) and their warnings."""

    leaderboard: pd.DataFrame  # one row per group (or run), every metric: mean, '<m> std', '<m> n', '<m> cells'
    per_eval: pd.DataFrame  # one row per evaluation, numeric (what the groups summarise)
    cells: pd.DataFrame  # the tidy table the report was computed from
    warnings: list[str] = field(default_factory=list)
    grouped: bool = True
    baseline: str | None = None
    calibration: list[str] = field(default_factory=list)  # calibration labels present

    def views(self) -> list[str]:
        return list(TITLES)


METRICS = ["clean", "mCE", "extra"] + [short_name(c) for c in CORRUPTIONS] + [f"s{s}" for s in SEVERITIES]


def build(results: Results, baseline: str | None = None, group: bool = True, sort: str = "mCE") -> Report:
    """Every view of the report from the tidy cells and the run table."""
    meta, errors, calibration = evaluations(results.cells)
    per_eval = scores(meta, errors, calibration)
    per_eval["group"] = assign_groups(per_eval, results.runs, group).to_numpy()
    calib_labels = [CALIBRATION[c][0] for c in calibration]
    warnings = _test_set_warnings(per_eval)
    if baseline:
        warnings += _add_baseline_columns(per_eval, errors, baseline)
    metrics = METRICS + calib_labels + (["norm. mCE", "rel. mCE"] if baseline else [])
    metrics += [f"{label} {s}" for label in calib_labels for s in ["clean"] + [f"s{s}" for s in SEVERITIES]]

    # Each metric over the seeds of a group: mean and sample std of the runs that have it, and how many do.
    grouped = per_eval.groupby("group", sort=False)
    cell_columns = [f"{m} cells" for m in metrics if f"{m} cells" in per_eval]
    summary = pd.concat([grouped[metrics].mean(), grouped[metrics].std(ddof=1).add_suffix(" std"),
                         grouped[metrics].count().add_suffix(" n"), grouped[cell_columns].sum()], axis=1) \
        if len(per_eval) else None
    statuses = results.runs.set_index("run")["status"].to_dict()
    base_values = _seed_values(per_eval) if baseline else {}
    rows = []
    for key, members in grouped:
        first = members.iloc[0]
        row = {"run": _group_name(list(members["run"])), "runs": ", ".join(members["run"]), "model": first["model"],
               "policy": first["policy"], "dataset": first["dataset"], "source": first["source"], "n": int(first["n"]),
               "frost_textures": first["frost_textures"], "seeds": ",".join(str(s) for s in sorted(members["seed"])),
               "size": len(members), "group": key, "status": _status(members, statuses)}
        row.update(summary.loc[key].to_dict())
        if baseline:
            row.update(_baseline_difference(key, first["baseline group"], base_values))
        rows.append(row)
    for run in results.runs.itertuples():
        if run.run not in set(per_eval["run"]):
            rows.append({"run": run.run, "runs": run.run, "model": run.model, "policy": run.policy,
                         "dataset": run.dataset, "source": "-", "n": None, "frost_textures": "", "seeds": str(run.seed),
                         "size": 1, "group": f"{run.run}|unevaluated", "clean": run.train_clean_error,
                         "clean n": 1 if run.train_clean_error is not None else 0,
                         "status": NOT_EVALUATED + ("" if run.status in ("trained", "external") else f"; {run.status}")})
    board = pd.DataFrame(rows)
    if board.empty:
        raise RobenchError("no run folders found under the given folders; train a run with `robench train` first")
    board = _sort_and_rank(board, sort)
    frost_shown = bool((~board["frost_textures"].isin(["", "official"])).any())
    if not frost_shown:
        board = board.drop(columns="frost_textures")
    return Report(leaderboard=board, per_eval=per_eval,
                  cells=results.cells, warnings=warnings, grouped=group, baseline=baseline, calibration=calib_labels)


def _status(members: pd.DataFrame, statuses: dict) -> str:
    odd = sorted({f"{r}: {statuses[r]}" for r in members["run"] if statuses.get(r) not in ("trained", "external")})
    parts = [] if (members["mCE cells"] == len(STANDARD_CELLS)).all() else ["incomplete"]
    return "; ".join(parts + odd)


def _test_set_warnings(per_eval: pd.DataFrame) -> list[str]:
    """A line per dataset whose runs were evaluated on different test sets (source, size, frost)."""
    out = []
    for dataset, rows in per_eval.groupby("dataset"):
        kinds = sorted({_test_set_label(r) for r in rows.itertuples()})
        if len(kinds) > 1:
            out.append(f"{dataset}: runs were evaluated on different test sets ({'; '.join(kinds)}); their errors are "
                       f"not comparable, so each is ranked only among runs of its own test set (see the source, n "
                       f"and frost columns). Re-evaluate with the same --source, --limit and --frost to compare them.")
    return out


def _test_set_label(row) -> str:
    frost = f", frost {row.frost_textures}" if row.frost_textures else ""
    return f"{row.source}, n={row.n}{frost}"


def _baseline_rows(per_eval: pd.DataFrame, baseline: str) -> pd.DataFrame:
    named = per_eval[per_eval["run"] == baseline]
    groups = set(named["group"]) | {g for g, m in per_eval.groupby("group") if _group_name(list(m["run"])) == baseline}
    return per_eval[per_eval["group"].isin(groups)]


def _add_baseline_columns(per_eval: pd.DataFrame, errors: np.ndarray, baseline: str) -> list[str]:
    """Normalised and relative mCE of every evaluation against the baseline group of its test set
    (the baseline's cells averaged over its seeds)."""
    base_rows = _baseline_rows(per_eval, baseline)
    if base_rows.empty:
        raise RobenchError(f"baseline run '{baseline}' has no evaluation under the given folders; "
                           f"give the name of an evaluated run (see the run column of robench report)")
    per_eval["norm. mCE"], per_eval["rel. mCE"], per_eval["baseline group"] = np.nan, np.nan, ""
    unmatched = []
    test_sets, base_sets = _key(per_eval, TEST_SET), _key(base_rows, TEST_SET)
    for test_set in sorted(set(test_sets)):
        mine = np.flatnonzero((test_sets == test_set).to_numpy())
        base = base_rows[(base_sets == test_set).to_numpy()]
        if base.empty:
            first = per_eval.iloc[mine[0]]
            unmatched.append(f"{first['dataset']} ({_test_set_label(first)})")
            continue
        base_errors = errors[base.index.to_numpy()].mean(axis=0)
        base_clean = float(base["clean"].mean())
        per_eval.loc[mine, "norm. mCE"] = normalised_mce(errors[mine], base_errors)
        per_eval.loc[mine, "rel. mCE"] = relative_mce(errors[mine], per_eval["clean"].to_numpy()[mine], base_errors,
                                                      base_clean)
        per_eval.loc[mine, "baseline group"] = base["group"].iloc[0]
    if unmatched:
        return [f"baseline '{baseline}' has no evaluation on {', '.join(unmatched)}; those rows have no baseline "
                f"columns"]
    return []


def _seed_values(per_eval: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """Group -> (seed, mCE) of its runs that have an mCE."""
    have = per_eval[per_eval["mCE"].notna()]
    return {g: list(zip(m["seed"].astype(int), m["mCE"])) for g, m in have.groupby("group", sort=False)}


def _baseline_difference(group: str, base_group: str, values: dict) -> dict:
    """mCE minus the baseline's, with a 95 % interval (paired by seed when the seeds match, else Welch)."""
    out = {"Δ mCE": math.nan, "Δ mCE ci": math.nan, "Δ mCE method": ""}
    ours, theirs = values.get(group), values.get(base_group)
    if not base_group or not ours or not theirs:
        return out
    if group == base_group:
        return {"Δ mCE": 0.0, "Δ mCE ci": math.nan, "Δ mCE method": "baseline"}
    diff = stats.difference(ours, theirs)
    return {"Δ mCE": diff.mean, "Δ mCE ci": diff.half_width if diff.half_width is not None else math.nan,
            "Δ mCE method": diff.method}


SORT_KEYS = (["mCE", "clean", "extra", "norm. mCE", "rel. mCE", "Δ mCE", "RMS-CE", "ECE", "NLL", "run"]
             + [short_name(c) for c in CORRUPTIONS] + [f"s{s}" for s in SEVERITIES])


def _sort_and_rank(board: pd.DataFrame, sort: str) -> pd.DataFrame:
    """Within each dataset and test set (unevaluated runs last): rows with a value first, ascending
    (errors: lower is better), then by name. The rank counts within one test set only."""
    keys = {k.lower(): k for k in SORT_KEYS}
    if sort.lower() not in keys:
        raise RobenchError(f"unknown --sort '{sort}'; choose one of: {', '.join(SORT_KEYS)}")
    key = keys[sort.lower()]
    if key == "run":
        values = board["run"]
    else:
        values = pd.to_numeric(board[key], errors="coerce") if key in board else pd.Series(np.nan, index=board.index)
    board = board.assign(_missing=values.isna() if key != "run" else False, _value=values,
                         _set=board["source"].eq("-").astype(int).astype(str) + _key(board, TEST_SET))
    board = board.sort_values(["dataset", "_set", "_missing", "_value", "run"], kind="stable")
    board = board.drop(columns=["_missing", "_value", "_set"])
    ranked = board["mCE"].notna() if "mCE" in board else pd.Series(False, index=board.index)
    rank = ranked.groupby(_key(board, TEST_SET)).cumsum()
    board = board.copy()  # one block, not hundreds of appended columns
    board.insert(0, "rank", rank.where(ranked).astype("Int64"))
    return board.reset_index(drop=True)


def report(folders: list[Path], baseline: str | None = None, group: bool = True, sort: str = "mCE",
           dataset: str | None = None, source: str | None = None, model: str | None = None,
           policy: str | None = None) -> Report:
    """Load the run folders, filter them, and build every view."""
    results = load(folders).filter(dataset=dataset, source=source, model=model, policy=policy)
    if results.runs.empty:
        raise RobenchError("no run folders match; check the folders and the --dataset/--source/--model/--policy filters")
    return build(results, baseline=baseline, group=group, sort=sort)


def write_report(folders: list[Path], outs: list[Path], cfg: ReportConfig) -> tuple[str, list[str]]:
    """The `robench report` verb: (what to print, warning lines). Every argument is checked before
    anything is written."""
    check_outputs(outs)
    if cfg.plots:
        from robench.report.plots import check_matplotlib

        check_matplotlib()
    result = report(folders, baseline=cfg.baseline, group=cfg.group, sort=cfg.sort, dataset=cfg.dataset,
                    source=cfg.source, model=cfg.model, policy=cfg.policy)
    text = render(result, cfg.format)
    for out in outs:
        write_output(result, out)
    if cfg.plots:
        from robench.report.plots import write_plots

        write_plots(result, Path(cfg.plots))
    warnings = [f"ignored {folder}: a hidden folder (left by an --overwrite that was killed, or hidden on purpose); "
                f"delete it, or rename it without the leading '.' to rank it"
                for folder in find_run_dirs(folders, hidden=True)]
    warnings += result.warnings
    if cfg.robustbench:
        from robench.report.robustbench import write_cards

        warnings += write_cards(result, Path(cfg.robustbench))
    return text, warnings
