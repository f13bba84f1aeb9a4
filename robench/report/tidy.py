"""The tidy table at the core of `robench report`: one row per evaluated cell of every run.

`load(folders)` walks run folders (any folder holding run.json or config.yaml, so a training run
killed before run.json was written is still found) and returns:

- `cells`: one row per (run, dataset, source, corruption, severity) with the columns CELL_COLUMNS,
  plus the calibration columns (CALIBRATION), the benchmark columns (benchmark, protocol, storage,
  subset: report.benchmarks) and the -P columns (flip_prob, top5_dist) of the eval CSVs that have
  them. `with_benchmark(cells)` gives the benchmark columns their defaults where a table lacks them
  (files written before the columns existed), so such a table, and every output of it, stays as it was;
- `runs`: one row per run folder (evaluated or not) with what its files say about it.

Every view of the report is a groupby/pivot of these two frames. Imports pandas, never torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from robench.errors import RobenchError
from robench.report.benchmarks import COLUMNS as BENCHMARK_COLUMNS
from robench.report.benchmarks import DEFAULTS as BENCHMARK_DEFAULTS
from robench.report.benchmarks import STABILITY
from robench.runfolder.files import (CALIBRATION_FIELDS, CONFIG, EVAL_DIR, METRICS, RUN_JSON, policy_label,
                                     read_csv_rows, read_eval_csv, read_json)

# How the leaderboards show the eval CSV's calibration columns (runfolder.files.CALIBRATION_FIELDS),
# in the order they show them: column -> (label, display scale).
CALIBRATION = {"rms_ce": ("RMS-CE", 100.0), "ece": ("ECE", 100.0), "nll": ("NLL", 1.0), "brier": ("Brier", 1.0)}
assert set(CALIBRATION) == set(CALIBRATION_FIELDS)

CELL_COLUMNS = ["run", "model", "policy", "dataset", "source", "seed", "eval_seed", "corruption", "severity", "n",
                "error", "frost_textures"]
RUN_COLUMNS = ["run", "path", "model", "policy", "dataset", "seed", "recipe", "epochs", "epochs_done",
               "train_clean_error", "status", "parameters", "origin"]

# Config keys that do not change what a run learns: runs differing only in these (and the seed) are
# replicates of one recipe and are grouped.
NOT_RECIPE = {"seed", "name", "out_dir", "device", "data_dir", "compile"}
# run.json keys that describe a run's outcome or environment rather than its recipe (for run folders
# without a config, e.g. external models).
RUN_JSON_OUTCOME = {"name", "seed", "clean_error", "wall_time_s", "versions", "device", "parameters", "config",
                    "test_images", "train_images"}


@dataclass
class Results:
    cells: pd.DataFrame
    runs: pd.DataFrame

    def filter(self, dataset=None, source=None, model=None, policy=None) -> "Results":
        """Keep the rows whose column is one of the comma-separated values given (None: all)."""
        cells, runs = self.cells, self.runs
        for column, wanted in (("dataset", dataset), ("source", source), ("model", model), ("policy", policy)):
            if not wanted:
                continue
            values = [v.strip() for v in str(wanted).split(",") if v.strip()]
            cells = cells[cells[column].isin(values)]
            if column != "source":
                runs = runs[runs[column].isin(values)]
        if source:  # a run matches a source filter only through its evaluations
            runs = runs[runs["run"].isin(cells["run"])]
        return Results(cells.reset_index(drop=True), runs.reset_index(drop=True))


def find_run_dirs(roots: list[Path], hidden: bool = False) -> list[Path]:
    """The run folders under `roots`: folders holding run.json or config.yaml. A folder inside a hidden
    one (".r.overwrite", the staging folder of an --overwrite killed by SIGKILL, or ".r.replaced") is
    not a run to rank: with hidden=True those are returned instead, for `robench report` to name."""
    dirs = set()
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise RobenchError(f"{root} does not exist; give a results folder or run folders")
        for name in (RUN_JSON, CONFIG):
            dirs.update(p.parent for p in root.rglob(name) if p.parent.name != EVAL_DIR
                        and any(part.startswith(".") for part in p.parent.relative_to(root).parts) == hidden)
    return sorted(dirs)


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise RobenchError(f"{path} is not valid YAML; restore it or remove the run folder") from None


def _metrics_rows(run_dir: Path) -> list[dict] | None:
    path = run_dir / METRICS
    return read_csv_rows(path) if path.exists() else None


def _last_test_error(rows: list[dict] | None) -> float | None:
    try:
        return float(rows[-1]["test_error"]) if rows else None
    except (KeyError, ValueError):
        return None


def run_info(run_dir: Path) -> dict:
    """What the run folder's files say: run.json when training finished, else config.yaml and
    metrics.csv (a run killed mid-training has no run.json)."""
    info = read_json(run_dir / RUN_JSON) if (run_dir / RUN_JSON).exists() else {}
    config = info.get("config") or (_read_yaml(run_dir / CONFIG) if (run_dir / CONFIG).exists() else {})
    get = lambda key, default=None: info.get(key, config.get(key, default))  # noqa: E731
    metrics = _metrics_rows(run_dir)  # read once: epochs done and the last test error
    epochs, done = config.get("epochs", info.get("epochs")), (len(metrics) if metrics is not None else None)
    if info.get("source") is not None:  # robench eval's run.json of a model robench did not train
        status = "external"
    elif info:
        status = "trained"
    elif done is not None and epochs is not None and done < epochs:
        status = f"stopped at epoch {done}/{epochs}"
    else:
        status = "no run.json"
    recipe = {k: v for k, v in config.items() if k not in NOT_RECIPE} if config else \
        {k: v for k, v in info.items() if k not in RUN_JSON_OUTCOME}
    clean = info.get("clean_error")
    return dict(
        run=get("name") or run_dir.name, path=str(run_dir), model=get("model", "?"),
        policy=policy_label(get("policy", "?"), get("mix", "none") or "none", bool(get("jsd", False)))
        if status != "external" else get("policy", "external"),
        dataset=get("dataset", "?"), seed=int(get("seed", 0) or 0),
        recipe=hashlib.sha1(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12],
        epochs=epochs, epochs_done=done, train_clean_error=float(clean) if clean is not None else _last_test_error(metrics),
        status=status, parameters=info.get("parameters"), origin=info.get("source"))


def _header(csv_path: Path) -> list[str]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return f.readline().strip().split(",")


def _number(value) -> float:
    return float(value) if value not in (None, "") else float("nan")


def _cells_of(run: dict, csv_path: Path) -> list[dict]:
    rows = read_eval_csv(csv_path)  # checked: -C and -P files alike (one-line errors)
    out = []
    for r in rows:
        try:
            cell = dict(run=run["run"], model=run["model"], policy=run["policy"], dataset=r["dataset"],
                        source=r["source"], seed=run["seed"], eval_seed=int(r.get("seed") or 0),
                        corruption=r["corruption"], severity=int(r.get("severity") or 0), n=int(r["n"]),
                        error=_number(r.get("error")), frost_textures=r.get("frost_textures") or "")
            for column in (*CALIBRATION, *STABILITY):
                cell[column] = _number(r.get(column))
            for column in BENCHMARK_COLUMNS:
                cell[column] = r.get(column) or BENCHMARK_DEFAULTS[column]
        except (KeyError, ValueError, TypeError):
            raise RobenchError(f"{csv_path} has a malformed row ({r}); re-run robench eval to rewrite it") from None
        out.append(cell)
    return out


def load(roots: list[Path]) -> Results:
    """The tidy cells and the run table of every run folder under `roots`."""
    runs, cells, present = [], [], set()
    for run_dir in find_run_dirs(roots):
        run = run_info(run_dir)
        runs.append(run)
        for csv_path in sorted((run_dir / EVAL_DIR).glob("*.csv")):
            cells.extend(_cells_of(run, csv_path))  # first: it checks the file (one-line errors)
            present.update(_header(csv_path))
    names = [r["run"] for r in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        where = [r["path"] for r in runs if r["run"] == duplicates[0]]
        raise RobenchError(f"two run folders are both named '{duplicates[0]}' ({', '.join(where)}); "
                           f"report one of them, or rename one (its run.json 'name')")
    optional = [*CALIBRATION, *BENCHMARK_COLUMNS, *STABILITY]
    columns = CELL_COLUMNS + [c for c in optional if c in present]
    cell_frame = pd.DataFrame(cells, columns=CELL_COLUMNS + optional)[columns]
    return Results(cell_frame, pd.DataFrame(runs, columns=RUN_COLUMNS))


def with_benchmark(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells with every benchmark column, the contract's default where the table has none."""
    missing = {c: BENCHMARK_DEFAULTS[c] for c in BENCHMARK_COLUMNS if c not in cells.columns}
    return cells.assign(**missing) if missing else cells
