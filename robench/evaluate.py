"""`robench eval`: clean error and the error of every requested (corruption, severity) cell.

This module only orchestrates: corrupted images come from the official released files
(`--source official`, robench.data.csets) or from robench's own engine drawn by the protocol's
chunk seeds (`--source generated`, robench.corruptions.protocol); the CSV schema is robench.runfiles;
which cells are done, and how each is committed, is robench.evalstore; ranks are robench.distributed.
This module owns the per-cell loop: a `Counter` sums each batch's counts on the device, and
`reduce_counts` adds them up over the ranks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from robench import distributed
from robench.config import EvalConfig
from robench.corruptions.protocol import (CHUNK, CLEAN, SOURCES, generated_batches, parse_corruptions,
                                          parse_severities)
from robench.data import csets, load_split
from robench.data.download import set_data_dir
from robench.errors import RobenchError
from robench.evalstore import CellStore, file_sha256
from robench.progress import progress_bar
from robench.runfiles import CHECKPOINT, RUN_JSON, eval_csv_path, read_config, read_eval_csv
from robench.runs import autocast, device_name, load_model

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
    """Evaluate a run folder into eval/<dataset>-<source>.csv (+ .json); returns the CSV path.

    Each cell is committed to the CSV as soon as it is counted, and cells already there for the same
    checkpoint, dataset, source, seed and images are skipped (unless cfg.force), so a killed or
    preempted evaluation resumes where it stopped. Under torchrun every cell's images are shared out
    among the ranks in whole CHUNK-image chunks and the counts summed: the CSV does not depend on
    the number of ranks. Only rank 0 writes and prints."""
    started = time.time()
    set_data_dir(cfg.data_dir)
    run_dir = Path(cfg.run)
    run_config = read_config(run_dir)
    cfg.validate()
    device = distributed.init(cfg.device)
    try:
        return _evaluate(cfg, run_dir, run_config, device, started, echo if distributed.is_main() else _quiet)
    finally:
        distributed.shutdown()


def _evaluate(cfg: EvalConfig, run_dir: Path, run_config: dict, device: torch.device, started: float, echo) -> Path:
    names, severities = parse_corruptions(cfg.corruptions), parse_severities(cfg.severities)
    dataset = cfg.dataset or run_config.get("dataset")
    source, folder = resolve_source(cfg.source, dataset, cfg.c_dir)
    frost = _frost_source(cfg, names, source, echo)
    checkpoint_sha256 = file_sha256(run_dir / CHECKPOINT) if (run_dir / CHECKPOINT).is_file() else None
    model, checkpoint = load_model(run_dir, device)
    options = {k: run_config.get(k) for k in ("image_column", "label_column", "image_size")}
    limit = cfg.limit or (run_config.get("test_limit") if dataset == run_config.get("dataset") else None)
    test = load_split(dataset, False, limit=limit, **options)
    if test.num_classes != checkpoint["num_classes"]:
        raise RobenchError(f"{dataset} has {test.num_classes} classes but the checkpoint predicts "
                           f"{checkpoint['num_classes']}; evaluate on the dataset the run was trained on")
    n = len(test)
    official = csets.OfficialCSet(folder) if source == "official" else None
    if official is not None:
        if official.n < n or not torch.equal(official.labels()[:n], test.labels):
            raise RobenchError(f"the C-set in {folder} does not match the {dataset} test set (labels differ)")
        official.check(names)
    if not (run_dir / RUN_JSON).exists():
        echo(f"note: {run_dir} has no {RUN_JSON} (its training did not finish); evaluating its last checkpoint "
             f"(epoch {checkpoint.get('epoch', '?')})")

    cells = [CLEAN] + [(c, s) for c in names for s in severities]
    out = eval_csv_path(run_dir, dataset, source)
    store = CellStore(out, dict(dataset=dataset, source=source, seed=cfg.seed, n=n, checkpoint_sha256=checkpoint_sha256))
    record = dict(corruptions=names, severities=severities, frost_textures=frost, checkpoint_epoch=checkpoint.get("epoch"),
                  force=cfg.force, batch_size=cfg.batch_size, ranks=distributed.world_size(),
                  device=device_name(device), c_dir=str(folder) if folder else None)
    todo = _shared(lambda: store.begin(cells, frost, cfg.force, record))  # rank 0 decides, before any work
    share = _chunk_share(n)
    images, labels = test.images[share], test.labels[share]
    if source == "generated":
        images = images.to(device)  # generated corruptions run on the device
    counter = Counter(model, cfg.batch_size, device, echo)
    skipped = len(cells) - len(todo)
    echo(f"evaluating {run_dir} on {dataset} ({n} test images, {len(cells) - 1} corrupted cells, {source}) "
         f"on {device_name(device)}" + (f" x {distributed.world_size()} ranks" if distributed.world_size() > 1 else "")
         + (f"; {skipped} cells already done are skipped (--force recomputes them)" if skipped else ""))
    with progress_bar("eval", total=n * len(todo) if distributed.is_main() else None) as bar:
        for corruption, severity in todo:
            bar.describe(f"{corruption} s{severity}" if severity else "clean")
            if (corruption, severity) == CLEAN:
                counts = counter.counts(images, labels)
            elif official is not None:
                counts = counter.counts(official.images(corruption, severity)[:n][share], labels)
            else:
                counts = counter.zeros()
                for start, batch in generated_batches(images, corruption, severity, cfg.seed, cfg.batch_size,
                                                      frost=frost or "auto", offset=share.start):
                    counter.add(counts, counter.counts(batch, labels[start:start + batch.shape[0]]))
            counts = reduce_counts(counts)
            bar.advance(n)
            row = cell_row(corruption, severity, n, counts, dataset, source, cfg.seed, frost)
            if distributed.is_main():
                store.commit(row)
    seconds = time.time() - started
    if distributed.is_main():
        store.finish(seconds=round(seconds, 2), images_per_s=round(n * len(todo) / seconds, 1))
    rows = read_eval_csv(out) if distributed.is_main() else []
    clean = [r for r in rows if (r["corruption"], int(r["severity"])) == CLEAN]
    clean_error = float(clean[0]["error"]) if clean else float("nan")
    echo(f"clean error {clean_error:.2f}%  ({len(todo)} cells computed, {n * len(todo) / seconds:,.0f} img/s, "
         f"{seconds:.1f}s) -> {out}")
    return out


def cell_row(corruption: str, severity: int, n: int, counts: dict, dataset: str, source: str, seed: int,
             frost: str | None) -> dict:
    """One row of the eval CSV from a cell's counts (summed over all ranks)."""
    correct = int(counts["correct"])
    return dict(corruption=corruption, severity=severity, n=n, correct=correct,
                error=f"{100 * (1 - correct / n):.4f}", dataset=dataset, source=source, seed=seed,
                frost_textures=frost if corruption == "frost" else "")


class Counter:
    """A cell's counts over images, batch by batch, as a dict of tensors kept on the device (one
    host read per cell, in reduce_counts). When a batch does not fit in CUDA memory it is retried
    in halves, and the smaller size is kept for the rest of the evaluation."""

    def __init__(self, model, batch_size: int, device: torch.device, echo=print):
        self.model, self.batch_size, self.device, self.echo = model, batch_size, device, echo

    def zeros(self) -> dict[str, torch.Tensor]:
        return {"correct": torch.zeros((), dtype=torch.long, device=self.device)}

    @staticmethod
    def add(total: dict, more: dict) -> None:
        for key, value in more.items():
            total[key] += value

    @torch.no_grad()
    def counts(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        total, start = self.zeros(), 0
        while start < images.shape[0]:
            size = self.batch_size
            try:
                batch = images[start:start + size].to(self.device, non_blocking=True)
                with autocast(self.device):
                    logits = self.model(batch)
                self.add(total, batch_counts(logits, labels[start:start + size].to(self.device)))
            except torch.cuda.OutOfMemoryError:
                self._halve(size)
                continue
            start += size
        return total

    def _halve(self, size: int) -> None:
        if size == 1:
            raise RobenchError("out of GPU memory with one image per batch; free the GPU (nvidia-smi shows who "
                               "holds it) or use --device cpu") from None
        self.batch_size = max(1, size // 2)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.echo(f"warning: out of GPU memory at batch size {size}; retrying with {self.batch_size} "
                  f"(pass --batch-size {self.batch_size} to start there)")


def batch_counts(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The sums one batch adds to its cell (a cell's row is computed from these sums alone)."""
    return {"correct": (logits.argmax(1) == labels).sum()}


def reduce_counts(counts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The counts summed over all ranks (identity without torchrun), in one collective: every tensor
    flattened into one float64 vector (exact for counts below 2**53) and split back after."""
    keys = sorted(counts)
    flat = torch.cat([counts[k].reshape(-1).double() for k in keys])
    flat = distributed.all_reduce_sum(flat).cpu()
    out, at = {}, 0
    for k in keys:
        size = counts[k].numel()
        out[k] = flat[at:at + size].reshape(counts[k].shape).to(counts[k].dtype)
        at += size
    return out


def _chunk_share(n: int) -> slice:
    """This rank's images: a contiguous run of whole CHUNK-image chunks, so that each generated chunk
    is drawn by one rank with the seed it has in a one-process evaluation."""
    chunks = distributed.share(-(-n // CHUNK))
    return slice(min(n, chunks.start * CHUNK), min(n, chunks.stop * CHUNK))


def _shared(decide: Callable):
    """What rank 0's `decide()` returns, on every rank; a RobenchError there is raised on every rank
    (so no rank waits forever for one that has stopped)."""
    result = None
    if distributed.is_main():
        try:
            result = ("ok", decide())
        except RobenchError as e:
            result = ("error", str(e))
    kind, value = distributed.broadcast_object(result)
    if kind == "error":
        raise RobenchError(value)
    return value


def _quiet(*_args) -> None:
    pass


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
