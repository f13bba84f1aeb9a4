"""`robench eval`: clean error and the error of every requested (corruption, severity) cell.

This module only orchestrates: corrupted images come from the official released files
(`--source official`, robench.data.csets) or from robench's own engine drawn by the protocol's
chunk seeds (`--source generated`, robench.corruptions.protocol); counting is robench.metrics; the
CSV schema and its merge are robench.runfiles.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from robench.config import EvalConfig
from robench.corruptions.protocol import CLEAN, SOURCES, generated_batches, parse_corruptions, parse_severities
from robench.data import csets, load_split
from robench.data.download import set_data_dir
from robench.errors import RobenchError
from robench.metrics import correct_on_device, count_correct
from robench.progress import progress_bar
from robench.runfiles import (EVAL_FIELDS, atomic_write_csv, eval_csv_path, merge_eval_rows, read_config,
                              write_json)
from robench.runs import device_name, load_model, resolve_device

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
    """Evaluate a run folder; writes eval/<dataset>-<source>.csv (+ .json) and returns the CSV path."""
    started = time.time()
    set_data_dir(cfg.data_dir)
    run_dir = Path(cfg.run)
    run_config = read_config(run_dir)
    cfg.validate()
    names, severities = parse_corruptions(cfg.corruptions), parse_severities(cfg.severities)
    dataset = cfg.dataset or run_config.get("dataset")
    device = resolve_device(cfg.device)
    source, folder = resolve_source(cfg.source, dataset, cfg.c_dir)
    frost = _frost_source(cfg, names, source, echo)
    model, checkpoint = load_model(run_dir, device)
    options = {k: run_config.get(k) for k in ("image_column", "label_column", "image_size")}
    limit = cfg.limit or (run_config.get("test_limit") if dataset == run_config.get("dataset") else None)
    test = load_split(dataset, False, limit=limit, **options)
    if test.num_classes != checkpoint["num_classes"]:
        raise RobenchError(f"{dataset} has {test.num_classes} classes but the checkpoint predicts "
                           f"{checkpoint['num_classes']}; evaluate on the dataset the run was trained on")
    n = len(test)
    images, labels = test.images, test.labels
    official = csets.OfficialCSet(folder) if source == "official" else None
    if official is not None:
        labels_c = official.labels()[:n]
        if official.n < n or not torch.equal(labels_c, labels):
            raise RobenchError(f"the C-set in {folder} does not match the {dataset} test set (labels differ)")
    if source == "generated":
        images = images.to(device)  # generated corruptions run on the device

    rows = []
    cells = [CLEAN] + [(c, s) for c in names for s in severities]
    echo(f"evaluating {run_dir} on {dataset} ({n} test images, {len(cells) - 1} corrupted cells, {source}) "
         f"on {device_name(device)}")
    with progress_bar("eval", total=n * len(cells)) as bar:
        for corruption, severity in cells:
            bar.describe(f"{corruption} s{severity}" if severity else "clean")
            correct = 0
            if (corruption, severity) == CLEAN:
                correct = count_correct(model, images, labels, cfg.batch_size, device)
            elif official is not None:
                correct = count_correct(model, official.images(corruption, severity)[:n], labels, cfg.batch_size, device)
            else:  # summed on the device: one host read per cell, not per batch
                total = torch.zeros((), dtype=torch.long, device=device)
                for start, batch in generated_batches(images, corruption, severity, cfg.seed, cfg.batch_size,
                                                      frost=frost or "auto"):
                    total += correct_on_device(model, batch, labels[start:start + batch.shape[0]], batch.shape[0],
                                               device)
                correct = int(total)
            bar.advance(n)
            rows.append(dict(corruption=corruption, severity=severity, n=n, correct=correct,
                             error=f"{100 * (1 - correct / n):.4f}", dataset=dataset, source=source, seed=cfg.seed,
                             frost_textures=frost if corruption == "frost" else ""))
    seconds = time.time() - started
    out = eval_csv_path(run_dir, dataset, source)
    rows = merge_eval_rows(out, rows)
    atomic_write_csv(out, EVAL_FIELDS, rows)
    write_json(out.with_suffix(".json"), {
        "dataset": dataset, "source": source, "seed": cfg.seed, "n": n, "corruptions": names,
        "severities": severities, "frost_textures": frost, "device": device_name(device),
        "seconds": round(seconds, 2), "images_per_s": round(n * len(cells) / seconds, 1),
        "c_dir": str(folder) if folder else None})
    clean_error = float(rows[0]["error"]) if rows and rows[0]["corruption"] == "clean" else float("nan")
    echo(f"clean error {clean_error:.2f}%  ({n * len(cells) / seconds:,.0f} img/s, {seconds:.1f}s) -> {out}")
    return out


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
