"""Eval CSVs with the benchmark columns (benchmark, protocol, storage, subset) for report tests: -C
files of any protocol, C-bar files and -P files (flip_prob and top5_dist instead of an error), beside
the run folders of tests/runfolders.py."""

from __future__ import annotations

import csv
from pathlib import Path

from robench.corruptions.protocol import CORRUPTIONS, STANDARD
from robench.report.benchmarks import CBAR, P_PERTURBATIONS

FIELDS = ["corruption", "severity", "n", "correct", "error", "dataset", "source", "seed", "frost_textures",
          "benchmark", "protocol", "storage", "subset"]
P_FIELDS = ["corruption", "severity", "n", "dataset", "source", "seed", "benchmark", "protocol", "storage", "subset",
            "flip_prob", "top5_dist"]


def write(path: Path, fields: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def c_eval(run: Path, errors, clean: float, dataset="imagenet", source="official", protocol="imagenet-c",
           storage="jpeg85", subset="all", n=1000, corruptions=CORRUPTIONS, name=None) -> None:
    """A -C file: errors(i, corruption, severity) in %, i the corruption's index in CORRUPTIONS."""
    cells = [("clean", 0, clean)] + [(c, s, errors(CORRUPTIONS.index(c), c, s)) for c in corruptions
                                     for s in range(1, 6)]
    rows = [dict(corruption=c, severity=s, n=n, correct=round(n * (1 - e / 100)), error=f"{e:.6f}", dataset=dataset,
                 source=source, seed=0, frost_textures="official" if c == "frost" else "", benchmark="c",
                 protocol=protocol, storage=storage, subset=subset) for c, s, e in cells]
    write(Path(run) / "eval" / (name or f"{dataset}-{protocol}-{source}.csv"), FIELDS, rows)


def cbar_eval(run: Path, errors, clean: float, dataset="cifar10", subset="all", n=1000, corruptions=CBAR) -> None:
    """A C-bar file: errors(i, corruption, severity), i the index in CBAR; its own clean row."""
    cells = [("clean", 0, clean)] + [(c, s, errors(CBAR.index(c), c, s)) for c in corruptions for s in range(1, 6)]
    rows = [dict(corruption=c, severity=s, n=n, correct=round(n * (1 - e / 100)), error=f"{e:.6f}", dataset=dataset,
                 source="generated", seed=0, frost_textures="", benchmark="c-bar", protocol="c-bar", storage="none",
                 subset=subset) for c, s, e in cells]
    write(Path(run) / "eval" / f"{dataset}-c-bar-generated.csv", FIELDS, rows)


def p_eval(run: Path, flip, top5, dataset="cifar10", perturbations=P_PERTURBATIONS, n=1000) -> None:
    """A -P file: flip(i, p) and top5(i, p) fractions per perturbation (i: its index in P_PERTURBATIONS)."""
    rows = [dict(corruption=p, severity=0, n=n, dataset=dataset, source="generated", seed=0, benchmark="p",
                 protocol="cifar10-p", storage="none", subset="all", flip_prob=f"{flip(i, p):.6f}",
                 top5_dist=f"{top5(i, p):.6f}") for i, p in enumerate(perturbations)]
    write(Path(run) / "eval" / f"{dataset}-p-generated.csv", P_FIELDS, rows)


__all__ = ["c_eval", "cbar_eval", "p_eval", "STANDARD", "CORRUPTIONS", "CBAR", "P_PERTURBATIONS"]
