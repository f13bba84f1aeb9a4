"""Hand-made run folders in the exact on-disk formats (config.yaml, run.json, metrics.csv, eval CSVs),
for report tests whose every number is computed by hand: `make_run` writes one; `three_seeds` and
`seeds` write a group of seeds of one recipe; `constant` and `calibration` give cell values."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from robench.corruptions import CORRUPTIONS, EXTRA, STANDARD

CALIBRATION_COLUMNS = ["nll", "brier", "ece", "rms_ce"]


def make_run(root: Path, name: str, *, errors=None, clean: float = 5.0, model: str = "small-cnn",
             policy: str = "standard", jsd: bool = False, dataset: str = "shapes10", source: str = "generated",
             seed: int = 0, n: int = 1000, frost: str = "procedural", calibration=None, run_json: bool = True,
             epochs: int = 4, epochs_done: int | None = None, severities=(1, 2, 3, 4, 5), corruptions=CORRUPTIONS,
             lr: float = 0.05) -> Path:
    """A run folder. `errors(i, corruption, severity)` gives each cell's error in % (i: the
    corruption's index in CORRUPTIONS); None writes no eval CSV. `calibration(i, c, s)` returns a
    dict of the calibration columns (fractions) for each cell, clean included (i = -1)."""
    run = Path(root) / name
    (run / "eval").mkdir(parents=True, exist_ok=True)
    config = dict(dataset=dataset, model=model, epochs=epochs, batch_size=128, lr=lr, policy=policy, mix="none",
                  jsd=jsd, seed=seed, name=name, out_dir=str(root), device="cpu")
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = epochs if epochs_done is None else epochs_done
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "lr", "train_loss", "train_error", "test_error", "images_per_s", "seconds"])
        for e in range(1, done + 1):
            writer.writerow([e, 0.01, 1.0, 20.0, f"{clean + (done - e):.2f}", 100.0, 1.0])
    if run_json:
        (run / "run.json").write_text(json.dumps(dict(name=name, model=model, policy=policy, mix="none", jsd=jsd,
                                                      dataset=dataset, seed=seed, epochs=epochs, parameters=1234,
                                                      clean_error=clean, config=config)))
    if errors is not None:
        fields = ["corruption", "severity", "n", "correct", "error", "dataset", "source", "seed", "frost_textures"]
        fields += CALIBRATION_COLUMNS if calibration else []
        rows = []
        cells = [(-1, "clean", 0, clean)] + [(CORRUPTIONS.index(c), c, s, errors(CORRUPTIONS.index(c), c, s))
                                             for c in corruptions for s in severities]
        for i, c, s, err in cells:
            row = dict(corruption=c, severity=s, n=n, correct=round(n * (1 - err / 100)), error=f"{err:.4f}",
                       dataset=dataset, source=source, seed=0, frost_textures=frost if c == "frost" else "")
            if calibration:
                row.update(calibration(i, c, s))
            rows.append(row)
        with open(run / "eval" / f"{dataset}-{source}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)
    return run


def constant(value: float):
    return lambda i, c, s: value


def calibration(i, c, s):
    """Calibration columns for make_run: rising with the severity (RMS-CE also with the corruption)."""
    return dict(nll=0.1 * (s + 1), brier=0.01 * s, ece=0.01 * s, rms_ce=0.02 * s + 0.001 * max(i, 0))


def three_seeds(root, prefix, mces, policy="standard", lr=0.05, **kw):
    """Runs <prefix>-s0, -s1, ...: seed k has error mces[k] in every cell and clean error 5 + k."""
    for seed, m in enumerate(mces):
        make_run(root, f"{prefix}-s{seed}", errors=constant(m), clean=5.0 + seed, seed=seed, policy=policy, lr=lr, **kw)


def seeds(root, prefix, mces, **kw):
    """Runs <prefix>-s0, -s1, ...: seed k has error mces[k] + s + (i % 4) in cell (i, s), clean 4 + k."""
    for seed, m in enumerate(mces):
        make_run(root, f"{prefix}-s{seed}", errors=lambda i, c, s, m=m: m + s + (i % 4), clean=4.0 + seed, seed=seed,
                 **kw)


__all__ = ["make_run", "constant", "calibration", "three_seeds", "seeds", "STANDARD", "EXTRA", "CORRUPTIONS"]
