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
- Benchmarks and protocols are kept apart: one table per (protocol, subset) of the -C cells
  (cifar10-c, tiny-imagenet-c, imagenet-c, scaled; all, robustbench-5k, ...), never one ranking of
  two. ImageNet-C rows add AlexNet-normalised mCE and relative mCE (report.baselines) beside their
  unnormalised mean error. The -C-bar error and the -P stability means (mFP, mT5D) join the row of
  the run's -C evaluation of the same dataset and subset, each only when measured.
- Effective robustness (report.effective): each run's shifted accuracy above a line fitted over a
  baseline set of runs.

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
from robench.corruptions.protocol import CORRUPTIONS, PROTOCOLS, SEVERITIES, STANDARD, short_name
from robench.errors import RobenchError
from robench.eval.cell import CLEAN, STANDARD_CELLS, grid
from robench.report import stats
from robench.report.baselines import ALEXNET_COLUMNS, ALEXNET_PROTOCOL, alexnet_imagenet_c
from robench.report.benchmarks import CBAR, CBAR_LABEL, CBAR_SEVERITIES, DEFAULT_TABLE, P_PERTURBATIONS, STABILITY
from robench.report.effective import Effective, effective_robustness
from robench.report.formats import check_outputs, render, write_output
from robench.report.tidy import CALIBRATION, Results, find_run_dirs, load, with_benchmark
from robench.report.views import TITLES

NOT_EVALUATED = "not evaluated"
# Evaluations on different test sets are not ranked together (and never compared with a baseline).
TEST_SET = ["dataset", "source", "n", "frost_textures", "protocol", "subset", "storage"]
# One evaluation: a run's -C cells of one test set; the key of its row.
EVAL_KEYS = ["run", "dataset", "source", "protocol", "subset", "storage"]
# The -C-bar and -P cells of a run join its -C evaluations of the same dataset and subset.
ATTACH = ["run", "dataset", "subset"]


# ----------------------------------------------------------------------------- one row per evaluation


def _main_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The -C cells, plus the clean cell of a -C-bar or -P evaluation of a run that has no -C
    evaluation of the same dataset and subset (that one is a row of its own, in its benchmark's table)."""
    is_c = (cells["benchmark"] == "c").to_numpy()
    with_c = set(map(tuple, cells.loc[is_c, ATTACH].to_numpy()))
    orphan = np.array([tuple(k) not in with_c for k in cells[ATTACH].to_numpy()], dtype=bool)
    keep = is_c | (orphan & (cells["corruption"] == CLEAN.corruption).to_numpy())
    return cells[keep].drop_duplicates(EVAL_KEYS + ["corruption", "severity"], keep="first")


def evaluations(cells: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """One row per evaluation (EVAL_KEYS) with its description, and E: array (evaluations, 19, 5) of
    errors (NaN where a cell is missing), plus the same array for each calibration column present."""
    keys = EVAL_KEYS
    if cells.empty:
        return pd.DataFrame(columns=keys), np.zeros((0, len(CORRUPTIONS), len(SEVERITIES))), {}
    cells = _main_cells(with_benchmark(cells))
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


def _attached(cells: pd.DataFrame, meta: pd.DataFrame, benchmark: str, column: str, names, severities=None):
    """Array (evaluations, cells) of `column` over the named cells of `benchmark` (x severities when
    given) of each evaluation's run, dataset and subset; NaN where a cell is missing."""
    mine = cells[(cells["benchmark"] == benchmark) & cells["corruption"].isin(names)]
    if severities is None:
        wide = mine.pivot_table(index=ATTACH, columns="corruption", values=column, aggfunc="mean", dropna=False)
        wide = wide.reindex(columns=list(names))
    else:
        wide = mine.pivot_table(index=ATTACH, columns=["corruption", "severity"], values=column, aggfunc="mean",
                                dropna=False)
        wide = wide.reindex(columns=pd.MultiIndex.from_tuples([(c, s) for c in names for s in severities]))
    wide = wide.reindex(index=pd.MultiIndex.from_frame(meta[ATTACH]))
    return wide.to_numpy(dtype=float)


def other_benchmarks(cells: pd.DataFrame, meta: pd.DataFrame) -> dict[str, tuple[np.ndarray, float]]:
    """The means that sit beside mCE when measured: label -> (values (evaluations, cells), scale).
    C-bar error: the 10 x 5 C-bar errors (%); mFP, mT5D: the -P columns over the 10 perturbations."""
    cells = with_benchmark(cells)
    out = {}
    if len(meta) and (cells["benchmark"] == "c-bar").any():
        out[CBAR_LABEL] = (_attached(cells, meta, "c-bar", "error", CBAR, CBAR_SEVERITIES), 1.0)
    for column, label in STABILITY.items():
        if len(meta) and column in cells and ((cells["benchmark"] == "p") & cells[column].notna()).any():
            # the flip probability in %; the top-5 distance is a mean count of rank changes, shown as is
            out[label] = (_attached(cells, meta, "p", column, P_PERTURBATIONS), 100.0 if column == "flip_prob" else 1.0)
    return out


def _flat(values: np.ndarray) -> np.ndarray:
    return values.reshape(values.shape[0], int(np.prod(values.shape[1:])))


def _mean_all(values: np.ndarray) -> np.ndarray:
    """Mean over every axis but the first; NaN as soon as one value is missing (never fewer cells)."""
    return _flat(values).mean(axis=1) if len(values) else np.zeros(0)


def scores(meta: pd.DataFrame, errors: np.ndarray, calibration: dict[str, np.ndarray],
           others: dict[str, tuple[np.ndarray, float]] | None = None) -> pd.DataFrame:
    """Per evaluation: clean, mCE, extra, CE per corruption, mean per severity, calibration means,
    the AlexNet-normalised means of ImageNet-C rows, the other benchmarks' means, and how many cells
    each mean has."""
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
    alexnet = (meta["protocol"] == ALEXNET_PROTOCOL).to_numpy() if "protocol" in meta else np.zeros(len(meta), bool)
    if alexnet.any():
        base, base_clean = alexnet_imagenet_c()
        normalised, relative = np.full(len(meta), np.nan), np.full(len(meta), np.nan)
        normalised[alexnet] = normalised_mce(errors[alexnet], base)
        relative[alexnet] = relative_mce(errors[alexnet], meta["clean"].to_numpy()[alexnet], base, base_clean)
        for label, values in zip(ALEXNET_COLUMNS, (normalised, relative)):
            out[label], out[f"{label} cells"] = values, np.where(alexnet, out["mCE cells"], 0)
    for label, (values, scale) in (others or {}).items():
        out[label] = scale * _mean_all(values)
        out[f"{label} cells"] = np.isfinite(values).sum(axis=1)
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
    others: list[str] = field(default_factory=list)  # C-bar error, mFP, mT5D: the ones measured
    effective: Effective | None = None  # effective robustness, when asked for

    def views(self) -> list[str]:
        return [v for v in TITLES if v != "effective"] + (["effective"] if self.effective is not None else [])

    @property
    def tables(self) -> list[str]:
        """The leaderboard tables (table_of keys), in order."""
        return sorted(set(self.leaderboard["table"]), key=table_order)


METRICS = ["clean", "mCE", "extra"] + [short_name(c) for c in CORRUPTIONS] + [f"s{s}" for s in SEVERITIES]


def build(results: Results, baseline: str | None = None, group: bool = True, sort: str = "mCE",
          effective: dict | None = None) -> Report:
    """Every view of the report from the tidy cells and the run table; `effective` (shift, baseline,
    link) adds effective robustness."""
    meta, errors, calibration = evaluations(results.cells)
    others = other_benchmarks(results.cells, meta)
    per_eval = scores(meta, errors, calibration, others)
    per_eval["group"] = assign_groups(per_eval, results.runs, group).to_numpy()
    calib_labels = [CALIBRATION[c][0] for c in calibration]
    warnings = _test_set_warnings(per_eval)
    if baseline:
        warnings += _add_baseline_columns(per_eval, errors, baseline)
    metrics = METRICS + calib_labels + (["norm. mCE", "rel. mCE"] if baseline else [])
    metrics += [c for c in ALEXNET_COLUMNS if c in per_eval] + list(others)
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
               "frost_textures": first["frost_textures"], "protocol": first["protocol"], "subset": first["subset"],
               "storage": first["storage"], "seeds": ",".join(str(s) for s in sorted(members["seed"])),
               "size": len(members), "group": key, "status": _status(members, statuses)}
        row.update(summary.loc[key].to_dict())
        if baseline:
            row.update(_baseline_difference(key, first["baseline group"], base_values))
        rows.append(row)
    for run in results.runs.itertuples():
        if run.run not in set(per_eval["run"]):
            rows.append({"run": run.run, "runs": run.run, "model": run.model, "policy": run.policy,
                         "dataset": run.dataset, "source": "-", "n": None, "frost_textures": "", "protocol": None,
                         "subset": None, "storage": None, "seeds": str(run.seed),
                         "size": 1, "group": f"{run.run}|unevaluated", "clean": run.train_clean_error,
                         "clean n": 1 if run.train_clean_error is not None else 0,
                         "status": NOT_EVALUATED + ("" if run.status in ("trained", "external") else f"; {run.status}")})
    board = pd.DataFrame(rows)
    if board.empty:
        raise RobenchError("no run folders found under the given folders; train a run with `robench train` first")
    board["table"] = _tables(board)
    board = _sort_and_rank(board, sort)
    frost_shown = bool((~board["frost_textures"].isin(["", "official"])).any())
    if not frost_shown:
        board = board.drop(columns="frost_textures")
    er = None
    if effective and effective.get("shift"):
        er = effective_robustness(per_eval, results.runs, **effective)
        warnings += er.warnings
    return Report(leaderboard=board, per_eval=per_eval, cells=results.cells, warnings=warnings, grouped=group,
                  baseline=baseline, calibration=calib_labels, others=list(others), effective=er)


def table_of(protocol, subset) -> str:
    """The leaderboard table an evaluation is ranked in: one per (protocol, subset)."""
    return f"{protocol}|{subset}"


DEFAULT_TABLE_KEY = table_of(*DEFAULT_TABLE)


def table_order(key: str) -> tuple:
    """The default table (cifar10-c over all images) first, then the others by name."""
    return (key != DEFAULT_TABLE_KEY, key)


def _tables(board: pd.DataFrame) -> list[str]:
    """Each row's table; a run never evaluated goes to the table of its dataset's evaluations (else
    the first table)."""
    evaluated = board["source"] != "-"
    keys = [table_of(p, s) if e else None for p, s, e in zip(board.get("protocol", [None] * len(board)),
                                                             board.get("subset", [None] * len(board)), evaluated)]
    known = sorted({k for k in keys if k}, key=table_order) or [DEFAULT_TABLE_KEY]
    by_dataset = {}
    for key, dataset in sorted(((k, d) for k, d in zip(keys, board["dataset"]) if k), key=lambda kd: table_order(kd[0])):
        by_dataset.setdefault(dataset, key)
    return [k or by_dataset.get(d, known[0]) for k, d in zip(keys, board["dataset"])]


def _status(members: pd.DataFrame, statuses: dict) -> str:
    odd = sorted({f"{r}: {statuses[r]}" for r in members["run"] if statuses.get(r) not in ("trained", "external")})
    complete = (members["mCE cells"] == len(STANDARD_CELLS)).all()
    no_c = ~members["protocol"].isin(PROTOCOLS).any()  # a -C-bar or -P evaluation of its own: no mCE to miss
    parts = [] if complete or no_c else ["incomplete"]
    return "; ".join(parts + odd)


def _test_set_warnings(per_eval: pd.DataFrame) -> list[str]:
    """A line per dataset and table whose runs were evaluated on different test sets (source, size,
    frost, storage)."""
    out = []
    if per_eval.empty:
        return out
    tables = [table_of(p, s) for p, s in zip(per_eval["protocol"], per_eval["subset"])]
    for (table, dataset), rows in per_eval.groupby([pd.Series(tables, index=per_eval.index), "dataset"]):
        kinds = sorted({_test_set_label(r) for r in rows.itertuples()})
        where = dataset if table == DEFAULT_TABLE_KEY else f"{dataset} ({table.replace('|', ', subset ')})"
        if len(kinds) > 1:
            out.append(f"{where}: runs were evaluated on different test sets ({'; '.join(kinds)}); their errors are "
                       f"not comparable, so each is ranked only among runs of its own test set (see the source, n "
                       f"and frost columns). Re-evaluate with the same --source, --limit and --frost to compare them.")
    return out


def _test_set_label(row) -> str:
    frost = f", frost {row.frost_textures}" if row.frost_textures else ""
    storage = f", storage {row.storage}" if getattr(row, "storage", "none") not in ("none", None) else ""
    return f"{row.source}, n={row.n}{frost}{storage}"


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


SORT_KEYS = (["mCE", "clean", "extra", "norm. mCE", "rel. mCE", "Δ mCE", "RMS-CE", "ECE", "NLL", "run",
              *ALEXNET_COLUMNS, CBAR_LABEL, *STABILITY.values()]
             + [short_name(c) for c in CORRUPTIONS] + [f"s{s}" for s in SEVERITIES])


def _sort_and_rank(board: pd.DataFrame, sort: str) -> pd.DataFrame:
    """Within each table, dataset and test set (unevaluated runs last): rows with a value first,
    ascending (errors: lower is better), then by name. The rank counts within one test set only.
    ImageNet-C rows sort by their AlexNet-normalised mCE where the key is mCE, as its papers rank."""
    keys = {k.lower(): k for k in SORT_KEYS}
    if sort.lower() not in keys:
        raise RobenchError(f"unknown --sort '{sort}'; choose one of: {', '.join(SORT_KEYS)}")
    key = keys[sort.lower()]
    if key == "run":
        values = board["run"]
    else:
        values = pd.to_numeric(board[key], errors="coerce") if key in board else pd.Series(np.nan, index=board.index)
        if key == "mCE" and ALEXNET_COLUMNS[0] in board:
            values = values.where(board["protocol"] != ALEXNET_PROTOCOL, board[ALEXNET_COLUMNS[0]])
    board = board.assign(_missing=values.isna() if key != "run" else False, _value=values,
                         _set=board["source"].eq("-").astype(int).astype(str) + _key(board, TEST_SET),
                         _table=[table_order(t) for t in board["table"]])
    board = board.sort_values(["_table", "dataset", "_set", "_missing", "_value", "run"], kind="stable")
    board = board.drop(columns=["_missing", "_value", "_set", "_table"])
    ranked = board["mCE"].notna() if "mCE" in board else pd.Series(False, index=board.index)
    rank = ranked.groupby(_key(board, TEST_SET)).cumsum()
    board = board.copy()  # one block, not hundreds of appended columns
    board.insert(0, "rank", rank.where(ranked).astype("Int64"))
    return board.reset_index(drop=True)


def report(folders: list[Path], baseline: str | None = None, group: bool = True, sort: str = "mCE",
           dataset: str | None = None, source: str | None = None, model: str | None = None,
           policy: str | None = None, effective: dict | None = None) -> Report:
    """Load the run folders, filter them, and build every view."""
    results = load(folders).filter(dataset=dataset, source=source, model=model, policy=policy)
    if results.runs.empty:
        raise RobenchError("no run folders match; check the folders and the --dataset/--source/--model/--policy filters")
    return build(results, baseline=baseline, group=group, sort=sort, effective=effective)


def write_report(folders: list[Path], outs: list[Path], cfg: ReportConfig) -> tuple[str, list[str]]:
    """The `robench report` verb: (what to print, warning lines). Every argument is checked before
    anything is written."""
    check_outputs(outs)
    if cfg.plots:
        from robench.report.plots import check_matplotlib

        check_matplotlib()
    result = report(folders, baseline=cfg.baseline, group=cfg.group, sort=cfg.sort, dataset=cfg.dataset,
                    source=cfg.source, model=cfg.model, policy=cfg.policy,
                    effective=dict(shift=cfg.effective_robustness, baseline=cfg.er_baseline, link=cfg.er_link))
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
