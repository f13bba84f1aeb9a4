"""`robench eval`: clean error and the error of every requested (corruption, severity) cell.

Corrupted images come from the official released files (`--source official`) or from robench's own
corruption engine (`--source generated`). Generated corruptions are drawn in fixed chunks of
CHUNK test images, each chunk with its own seed derived from (seed, corruption, severity, chunk
index), so image k is corrupted identically whatever the batch size or the number of workers.
"""

from __future__ import annotations

import csv
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from robench.corruptions import CORRUPTIONS, EXTRA, STANDARD
from robench.data import csets, load_split
from robench.data.download import set_data_dir
from robench.errors import RobenchError
from robench.progress import progress_bar
from robench.runs import (EVAL_DIR, atomic_write_csv, autocast, device_name, load_model, read_config, resolve_device,
                          write_json)

CHUNK = 500  # images per independently seeded corruption chunk; batch sizes are rounded to a multiple
FIELDS = ["corruption", "severity", "n", "correct", "error", "dataset", "source", "seed"]
SOURCES = ("auto", "official", "generated")
CORRUPTION_SETS = {"all": CORRUPTIONS, "standard": STANDARD, "extra": EXTRA, "none": ()}


@dataclass
class EvalConfig:
    run: str
    corruptions: str = "all"
    severities: str = "1-5"
    source: str = "auto"
    batch_size: int = 1000
    seed: int = 0
    device: str = "auto"
    dataset: str | None = None  # default: the dataset the run was trained on
    data_dir: str | None = None
    c_dir: str | None = None
    limit: int | None = None  # only the first N test images (default: the run's test_limit)


def parse_corruptions(spec: str) -> list[str]:
    """'all' | 'standard' | 'extra' | 'none' | 'name,name,...' -> names in the official order."""
    spec = spec.strip()
    if spec in CORRUPTION_SETS:
        return list(CORRUPTION_SETS[spec])
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise RobenchError(f"unknown corruption '{(unknown or [spec])[0]}' in --corruptions; use all, standard, "
                           f"extra, none or names from: {', '.join(CORRUPTIONS)}")
    return [c for c in CORRUPTIONS if c in names]


def parse_severities(spec: str) -> list[int]:
    """'1-5' | '3' | '1,5' | '2-3,5' -> sorted severities in 1..5."""
    out: set[int] = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*([1-5])\s*(?:-\s*([1-5])\s*)?", part)
        if not match:
            raise RobenchError(f"bad --severities '{spec}'; use a range like 1-5, a list like 1,5, or one value in 1..5")
        low, high = int(match[1]), int(match[2] or match[1])
        if low > high:
            raise RobenchError(f"bad --severities '{spec}': range {low}-{high} is empty")
        out.update(range(low, high + 1))
    return sorted(out)


def chunk_seed(seed: int, corruption: str, severity: int, chunk_index: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{corruption}/{severity}/{chunk_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # non-negative int63 for torch.Generator


def generated_batches(images: torch.Tensor, corruption: str, severity: int, seed: int,
                      batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, corrupted batch) over `images` (uint8, any device), seeded per fixed chunk."""
    from robench.corruptions import corrupt

    batch_size = max(CHUNK, batch_size // CHUNK * CHUNK)
    for start in range(0, images.shape[0], batch_size):
        parts = [corrupt(images[c:c + CHUNK], corruption, severity, chunk_seed(seed, corruption, severity, c // CHUNK))
                 for c in range(start, min(start + batch_size, images.shape[0]), CHUNK)]
        yield start, torch.cat(parts)


@torch.no_grad()
def count_correct(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> int:
    """Top-1 correct predictions of `model` over uint8 images, in batches moved to `device`."""
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size].to(device, non_blocking=True)
        with autocast(torch.device(device)):
            predictions = model(batch).argmax(1)
        correct += (predictions == labels[start:start + batch_size].to(device)).sum().item()
    return correct


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
    names, severities = parse_corruptions(cfg.corruptions), parse_severities(cfg.severities)
    if cfg.batch_size < 1:
        raise RobenchError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    dataset = cfg.dataset or run_config.get("dataset")
    device = resolve_device(cfg.device)
    source, folder = resolve_source(cfg.source, dataset, cfg.c_dir)
    model, checkpoint = load_model(run_dir, device)
    options = {k: run_config.get(k) for k in ("image_column", "label_column", "image_size")}
    limit = cfg.limit or (run_config.get("test_limit") if dataset == run_config.get("dataset") else None)
    test = load_split(dataset, False, limit=limit, **options)
    if test.num_classes != checkpoint["num_classes"]:
        raise RobenchError(f"{dataset} has {test.num_classes} classes but the checkpoint predicts "
                           f"{checkpoint['num_classes']}; evaluate on the dataset the run was trained on")
    n = min(len(test), limit) if limit else len(test)
    images, labels = test.images[:n], test.labels[:n]
    official = csets.OfficialCSet(folder) if source == "official" else None
    if official is not None:
        labels_c = official.labels()[:n]
        if official.n < n or not torch.equal(labels_c, labels):
            raise RobenchError(f"the C-set in {folder} does not match the {dataset} test set (labels differ)")
    if source == "generated":
        images = images.to(device)  # generated corruptions run on the device
    frost_source = None
    if source == "generated" and "frost" in names:
        from robench.corruptions.frost_textures import resolve_frost

        frost_source = resolve_frost("auto")  # frost's default choice; recorded in the .json
        if frost_source == "procedural":
            echo("warning: frost textures unavailable; using the procedural stand-in, so frost results "
                 "are not comparable to CIFAR-10-C")

    rows = []
    cells = [("clean", 0)] + [(c, s) for c in names for s in severities]
    echo(f"evaluating {run_dir} on {dataset} ({n} test images, {len(cells) - 1} corrupted cells, {source}) "
         f"on {device_name(device)}")
    with progress_bar("eval", total=n * len(cells)) as bar:
        for corruption, severity in cells:
            bar.describe(f"{corruption} s{severity}" if severity else "clean")
            correct = 0
            if corruption == "clean":
                correct = count_correct(model, images, labels, cfg.batch_size, device)
            elif official is not None:
                correct = count_correct(model, official.images(corruption, severity)[:n], labels, cfg.batch_size, device)
            else:
                for start, batch in generated_batches(images, corruption, severity, cfg.seed, cfg.batch_size):
                    correct += count_correct(model, batch, labels[start:start + batch.shape[0]], batch.shape[0], device)
            bar.advance(n)
            rows.append(dict(corruption=corruption, severity=severity, n=n, correct=correct,
                             error=f"{100 * (1 - correct / n):.4f}", dataset=dataset, source=source, seed=cfg.seed))
    seconds = time.time() - started
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}-{source}")
    out = run_dir / EVAL_DIR / f"{stem}.csv"
    rows = _merge(out, rows)
    atomic_write_csv(out, FIELDS, rows)
    meta = {"dataset": dataset, "source": source, "seed": cfg.seed, "n": n, "corruptions": names,
            "severities": severities, "device": device_name(device), "seconds": round(seconds, 2),
            "images_per_s": round(n * len(cells) / seconds, 1), "c_dir": str(folder) if folder else None}
    if frost_source is not None:
        meta["frost_textures"] = frost_source
    write_json(out.with_suffix(".json"), meta)
    clean_error = float(rows[0]["error"]) if rows and rows[0]["corruption"] == "clean" else float("nan")
    echo(f"clean error {clean_error:.2f}%  ({n * len(cells) / seconds:,.0f} img/s, {seconds:.1f}s) -> {out}")
    return out


def _merge(path: Path, rows: list[dict]) -> list[dict]:
    """Keep cells of an earlier evaluation with the same seed that this one did not recompute."""
    if not path.exists():
        return rows
    fresh = {(r["corruption"], int(r["severity"])) for r in rows}
    kept = [r for r in read_eval_csv(path)
            if (r["corruption"], int(r["severity"])) not in fresh and int(r["seed"]) == rows[0]["seed"]]
    order = {name: i for i, name in enumerate(("clean",) + CORRUPTIONS)}
    return sorted(kept + rows, key=lambda r: (order.get(r["corruption"], 99), int(r["severity"])))


def read_eval_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
