"""`robench eval`: clean error and the error of every requested (corruption, severity) cell.

This module only orchestrates: corrupted images come from the official released files
(`--source official`, robench.data.csets) or from robench's own engine drawn by the protocol's
chunk seeds (`--source generated`, robench.corruptions.protocol); counting is robench.metrics; the
CSV schema and its merge are robench.runfiles.
"""

from __future__ import annotations

import io
import sys
import time
import types
from pathlib import Path
from typing import Callable, Iterator

import torch

from robench.config import EvalConfig
from robench.corruptions.protocol import CLEAN, SOURCES, generated_batches, parse_corruptions, parse_severities
from robench.data import csets, load_split
from robench.data.download import set_data_dir
from robench.errors import RobenchError
from robench import subjects
from robench.metrics import CellMetrics
from robench.progress import progress_bar
from robench.runfiles import (CALIBRATION_FIELDS, EVAL_FIELDS, atomic_write_bytes, atomic_write_csv, eval_csv_path,
                              merge_eval_rows, write_json)
from robench.runs import autocast, device_name, resolve_device

def resolve_source(source: str, dataset: str, c_dir: str | None) -> tuple[str, Path | None]:
    if source not in SOURCES:
        raise RobenchError(f"unknown --source '{source}'; choose one of: {', '.join(SOURCES)}")
    folder = csets.find(dataset, c_dir)
    release = csets.release_for(dataset)
    if source == "official":
        if release is None:
            raise RobenchError(f"{dataset} has no official corruption release; use --source generated")
        if folder is None:
            raise RobenchError(f"official {release.name} files not found (looked in {c_dir or csets.data_dir() / release.folder}); "
                               f"run `robench data download {release.name}`, pass --c-dir, or use --source generated")
        return "official", folder
    if source == "auto" and folder is not None:
        return "official", folder
    return "generated", None


def evaluate(cfg: EvalConfig, echo: Callable[[str], None] = print) -> Path:
    """Evaluate a run folder, or a model robench did not train (robench.subjects); writes
    eval/<dataset>-<source>.csv (+ .json) in the run's folder and returns the CSV path."""
    started = time.time()
    set_data_dir(cfg.data_dir)
    cfg.validate()
    subject = subjects.resolve(cfg)
    names, severities = parse_corruptions(cfg.corruptions), parse_severities(cfg.severities)
    dataset = subject.dataset
    device = resolve_device(cfg.device)
    source, folder = resolve_source(cfg.source, dataset, cfg.c_dir)
    frost = _frost_source(cfg, names, source, echo)
    test = load_split(dataset, False, limit=subject.limit, **subject.split_options)
    model = subject.build(test.num_classes, test.images[:2], device)
    n = len(test)
    images, official = cell_sources(test, dataset, source, folder, device)
    rows, predictions = [], {}
    cells = [CLEAN] + [(c, s) for c in names for s in severities]
    echo(f"evaluating {' + '.join(subject.specs)} on {dataset} ({n} test images, {len(cells) - 1} corrupted cells, "
         f"{source}) on {device_name(device)}")
    for (corruption, severity), metrics in measure(model, images, test.labels, cells, official, cfg.seed,
                                                   cfg.batch_size, frost, device, cfg.save_predictions):
        if cfg.save_predictions:
            predictions[(corruption, severity)] = metrics.state()
        rows.append(cell_row(corruption, severity, metrics.result(), dataset, source, cfg.seed, frost))
    seconds = time.time() - started
    out = eval_csv_path(subject.run_dir, dataset, source)
    rows = merge_eval_rows(out, rows)
    subject.write_run_json(model, dataset, test.num_classes, device_name(device))
    if cfg.save_predictions:
        save_predictions(out, predictions, test.labels, cfg.seed)
    atomic_write_csv(out, EVAL_FIELDS, rows)
    write_json(out.with_suffix(".json"), {
        "dataset": dataset, "source": source, "seed": cfg.seed, "n": n, "corruptions": names,
        "severities": severities, "frost_textures": frost, "device": device_name(device),
        "seconds": round(seconds, 2), "images_per_s": round(n * len(cells) / seconds, 1),
        "c_dir": str(folder) if folder else None})
    clean_error = float(rows[0]["error"]) if rows and rows[0]["corruption"] == "clean" else float("nan")
    echo(f"clean error {clean_error:.2f}%  ({n * len(cells) / seconds:,.0f} img/s, {seconds:.1f}s) -> {out}")
    return out


def cell_sources(test, dataset: str, source: str, folder, device):
    """(the clean images, on the device when corruptions are generated there; the official C-set or None)."""
    official = csets.OfficialCSet(folder) if source == "official" else None
    if official is not None:
        n = len(test)
        if official.n < n or not torch.equal(official.labels()[:n], test.labels):
            raise RobenchError(f"the C-set in {folder} does not match the {dataset} test set (labels differ)")
    images = test.images.to(device) if source == "generated" else test.images
    return images, official


def measure(model, images, labels, cells, official, seed: int, batch_size: int, frost: str | None, device,
            keep_predictions: bool = False) -> Iterator[tuple[tuple[str, int], CellMetrics]]:
    """Each cell's accumulated metrics, in order: one forward per image, the metrics on the device."""
    n = labels.shape[0]
    with progress_bar("eval", total=n * len(cells)) as bar:
        for corruption, severity in cells:
            bar.describe(f"{corruption} s{severity}" if severity else "clean")
            metrics = CellMetrics(device, keep_predictions=keep_predictions)
            for batch, batch_labels in cell_batches(images, labels, corruption, severity, official, seed,
                                                    batch_size, frost):
                metrics.update(forward(model, batch, device), batch_labels)
            bar.advance(n)
            yield (corruption, severity), metrics


def cell_batches(images, labels, corruption: str, severity: int, official, seed: int, batch_size: int,
                 frost: str | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The (images, labels) batches of one cell: clean, from the official files, or generated by
    the protocol's chunk seeds."""
    n = labels.shape[0]
    if (corruption, severity) == CLEAN or official is not None:
        source = images if (corruption, severity) == CLEAN else official.images(corruption, severity)[:n]
        for start in range(0, n, batch_size):
            yield source[start:start + batch_size], labels[start:start + batch_size]
    else:
        for start, batch in generated_batches(images, corruption, severity, seed, batch_size, frost=frost or "auto"):
            yield batch, labels[start:start + batch.shape[0]]


@torch.no_grad()
def forward(model, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    with autocast(device):
        return model(batch.to(device, non_blocking=True))


def cell_row(corruption: str, severity: int, result: dict, dataset: str, source: str, seed: int,
             frost: str | None) -> dict:
    """One eval-CSV row (runfiles.EVAL_FIELDS): error in %, calibration metrics as fractions."""
    return dict(corruption=corruption, severity=severity, n=result["n"], correct=result["correct"],
                error=f"{100 * result['error']:.4f}", dataset=dataset, source=source, seed=seed,
                frost_textures=frost if corruption == "frost" else "",
                **{k: f"{result[k]:.6f}" for k in CALIBRATION_FIELDS})


def save_predictions(csv_path: Path, predictions: dict, labels: torch.Tensor, seed: int) -> None:
    """eval/<dataset>-<source>-predictions.npz: `labels` and, per cell, `<corruption>_s<severity>_prediction`
    (int64) and `..._confidence` (float32, the top softmax probability), in test-set order. Cells of
    an earlier file with the same seed that were not recomputed are kept."""
    import numpy as np

    path = csv_path.with_name(csv_path.stem + "-predictions.npz")
    arrays = {}
    if path.exists():
        with np.load(path) as old:
            if int(old["seed"]) == seed and np.array_equal(old["labels"], labels.numpy()):
                arrays = {k: old[k] for k in old.files}
    arrays.update(labels=labels.numpy(), seed=np.array(seed))
    for (corruption, severity), state in predictions.items():
        arrays[f"{corruption}_s{severity}_prediction"] = state["prediction"].cpu().numpy()
        arrays[f"{corruption}_s{severity}_confidence"] = state["confidence"].cpu().numpy()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _frost_source(cfg: EvalConfig, names: list[str], source: str, echo) -> str | None:
    """Which frost photographs the frost cells use: the released files were made with the
    official ones; generated frost uses what --frost chooses (auto: official when available)."""
    if "frost" not in names:
        return None
    if source == "official":
        return "official"
    from robench.corruptions.frost_textures import resolve_frost

    frost = resolve_frost(cfg.frost)
    if frost != cfg.frost:
        echo("warning: the official frost photographs are not available, so frost uses the procedural stand-in "
             "and its errors are not comparable to CIFAR-10-C (recorded in the eval files; --frost official "
             "says how to get them)")
    return frost


class _CallableModule(types.ModuleType):
    """`robench.evaluate(model, ...)` is the Python API (robench.api.evaluate), but importing this
    module rebinds the name `robench.evaluate` to it; calling the module calls the API, so both
    spellings work whichever was imported first."""

    def __call__(self, *args, **kwargs):
        from robench.api import evaluate as evaluate_model

        return evaluate_model(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
