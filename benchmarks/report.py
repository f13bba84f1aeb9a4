"""`robench report` on many runs: seconds to read the folders and build every view.

Writes --runs run folders (config.yaml, run.json, metrics.csv and one eval CSV of 96 cells: clean +
19 corruptions x 5 severities, with the calibration columns nll, brier, ece, rms_ce) into a
temporary folder, in groups of 3 seeds of the same recipe, then times, --repeats times each:
loading the tidy table, building the report (grouping, baseline columns and intervals), and
rendering markdown and HTML without plots; then the whole `robench report` command in a fresh
process (interpreter start and imports included); the plots are timed apart (matplotlib dominates
them).
Prints one JSON line per phase (median and best seconds) and a total line.

  python benchmarks/report.py [--runs 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from robench.corruptions.protocol import CORRUPTIONS, SEVERITIES
from robench.report import leaderboard as R
from robench.report.html import page
from robench.report.tidy import load

FIELDS = ["corruption", "severity", "n", "correct", "error", "dataset", "source", "seed", "frost_textures",
          "nll", "brier", "ece", "rms_ce"]


def write_runs(root: Path, runs: int) -> None:
    rng = random.Random(0)
    for k in range(runs):
        recipe, seed = k // 3, k % 3
        name = f"recipe{recipe:02d}-s{seed}"
        folder = root / name / "eval"
        folder.mkdir(parents=True)
        config = dict(dataset="cifar10", model="resnet18", policy="augmix" if recipe % 2 else "standard", mix="none",
                      jsd=False, lr=0.1 + 0.01 * recipe, epochs=30, seed=seed, name=name)
        (root / name / "config.yaml").write_text(yaml.safe_dump(config))
        (root / name / "run.json").write_text(json.dumps({**config, "clean_error": 5.0, "config": config}))
        rows = []
        for corruption, severity in [("clean", 0)] + [(c, s) for c in CORRUPTIONS for s in SEVERITIES]:
            error = 5 + 4 * severity + rng.random() * 3 + recipe * 0.1
            rows.append(dict(corruption=corruption, severity=severity, n=10000, correct=round(100 * (100 - error)),
                             error=f"{error:.4f}", dataset="cifar10", source="official", seed=0,
                             frost_textures="official" if corruption == "frost" else "", nll=f"{0.2 + 0.1 * severity:.4f}",
                             brier=f"{0.1 + 0.02 * severity:.4f}", ece=f"{0.01 * severity:.4f}",
                             rms_ce=f"{0.012 * severity:.4f}"))
        with open(folder / "cifar10-official.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


def timed(fn, repeats: int) -> tuple[float, float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), min(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_runs(root, args.runs)
        total = 0.0
        med, best, results = timed(lambda: load([root]), args.repeats)
        print(json.dumps(dict(phase="load", runs=args.runs, cells=len(results.cells), median_s=round(med, 3),
                              best_s=round(best, 3))))
        total += med
        med, best, rep = timed(lambda: R.build(results, baseline="recipe00-s0"), args.repeats)
        print(json.dumps(dict(phase="build", rows=len(rep.leaderboard), median_s=round(med, 3), best_s=round(best, 3))))
        total += med
        med, best, _ = timed(lambda: (R.render(rep, "md"), page(rep, figures={})), args.repeats)
        print(json.dumps(dict(phase="render md+html (no plots)", median_s=round(med, 3), best_s=round(best, 3))))
        total += med
        print(json.dumps(dict(phase="total", runs=args.runs, cells_per_run=96, calibration=True, median_s=round(total, 3),
                              target_s=2.0, met=total < 2.0)))
        command = [sys.executable, "-m", "robench", "report", str(root), "--baseline", "recipe00-s0"]
        med, best, _ = timed(lambda: subprocess.run(command, check=True, capture_output=True,
                                                    cwd=Path(__file__).resolve().parents[1]), args.repeats)
        print(json.dumps(dict(phase="robench report CLI, end to end (process start, imports, md)", median_s=round(med, 3),
                              best_s=round(best, 3), met=med < 2.0)))
        from robench.report.plots import figures

        med, best, figs = timed(lambda: figures(rep), 1)
        print(json.dumps(dict(phase="plots (4 PNGs, apart)", median_s=round(med, 3), figures=len(figs))))


if __name__ == "__main__":
    main()
