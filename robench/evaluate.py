"""`robench eval`: clean error, calibration and the error of every requested (corruption, severity) cell.

This module only orchestrates: what is evaluated (a run folder, a model robench did not train, an
ensemble) is robench.subjects; corrupted images come from the official released files
(`--source official`, robench.data.csets) or from robench's own engine drawn by the protocol's
chunk seeds (`--source generated`, robench.corruptions.protocol); a cell's metrics are
robench.metrics.CellMetrics; the CSV schema is robench.runfiles; which cells are done, and how each
is committed, is robench.evalstore; ranks are robench.distributed. This module owns the per-cell
loop: a `Counter` feeds each batch's logits to the cell's metrics on the device (halving the batch
when CUDA runs out of memory), and `reduce_state` combines them over the ranks.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
import types
from pathlib import Path
from typing import Callable, Iterator

import torch

from robench import distributed, subjects
from robench.config import EvalConfig, eval_batch_size
from robench.corruptions.protocol import (CHUNK, CLEAN, SOURCES, generated_batches, parse_corruptions,
                                          parse_severities)
from robench.data import csets, load_split
from robench.data.download import set_data_dir
from robench.errors import RobenchError
from robench.evalstore import CellStore, file_sha256
from robench.metrics import CellMetrics, compute
from robench.progress import progress_bar
from robench.runfiles import (CALIBRATION_FIELDS, CHECKPOINT, RUN_JSON, atomic_write_bytes, eval_csv_path,
                              read_eval_csv)
from robench.runs import device_name, full_fp32


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
    """Evaluate a run folder, or a model robench did not train (robench.subjects), into
    eval/<dataset>-<source>.csv (+ .json) in the run's folder; returns the CSV path.

    Each cell is committed to the CSV as soon as it is measured, and cells already there for the
    same model, dataset, source, seed and images are skipped (unless cfg.force), so a killed or
    preempted evaluation resumes where it stopped. Under torchrun every cell's images are shared out
    among the ranks in whole CHUNK-image chunks and the metrics combined: the CSV does not depend on
    the number of ranks. Only rank 0 writes and prints."""
    started = time.time()
    set_data_dir(cfg.data_dir)
    cfg.validate()
    device = distributed.init(cfg.device)
    try:
        return _evaluate(cfg, device, started, echo if distributed.is_main() else _quiet)
    finally:
        distributed.shutdown()


def _evaluate(cfg: EvalConfig, device: torch.device, started: float, echo) -> Path:
    subject = subjects.resolve(cfg)
    names, severities = parse_corruptions(cfg.corruptions), parse_severities(cfg.severities)
    dataset, run_dir = subject.dataset, subject.run_dir
    source, folder = resolve_source(cfg.source, dataset, cfg.c_dir)
    frost = _frost_source(cfg, names, source, echo)
    test = load_split(dataset, False, limit=subject.limit, **subject.split_options)
    model = subject.build(test.num_classes, test.images[:2], device)
    n = len(test)
    batch_size = eval_batch_size(cfg.batch_size, device)
    official = open_official(folder, test, dataset, names) if source == "official" else None
    if subject.trained and not (run_dir / RUN_JSON).exists():
        echo(f"note: {run_dir} has no {RUN_JSON} (its training did not finish); evaluating its last checkpoint "
             f"(epoch {subject.descriptions[0].get('epoch', '?')})")

    cells = [CLEAN] + [(c, s) for c in names for s in severities]
    out = eval_csv_path(run_dir, dataset, source)
    store = CellStore(out, dict(dataset=dataset, source=source, seed=cfg.seed, n=n,
                                checkpoint_sha256=model_fingerprint(subject)))
    record = dict(corruptions=names, severities=severities, frost_textures=frost, force=cfg.force,
                  checkpoint_epoch=subject.descriptions[0].get("epoch") if subject.trained else None,
                  batch_size=batch_size, ranks=distributed.world_size(), device=device_name(device),
                  c_dir=str(folder) if folder else None)
    todo = _shared(lambda: store.begin(cells, frost, cfg.force, record))  # rank 0 decides, before any work
    if distributed.is_main():
        subject.write_run_json(model, dataset, test.num_classes, device_name(device))
    share = _chunk_share(n)
    images, labels = test.images[share], test.labels[share]
    if source == "generated":
        images = images.to(device)  # generated corruptions run on the device
    counter = Counter(model, batch_size, device, echo)
    skipped = len(cells) - len(todo)
    echo(f"evaluating {' + '.join(subject.specs)} on {dataset} ({n} test images, {len(cells) - 1} corrupted cells, "
         f"{source}) on {device_name(device)}"
         + (f" x {distributed.world_size()} ranks" if distributed.world_size() > 1 else "")
         + (f"; {skipped} cells already done are skipped (--force recomputes them)" if skipped else ""))
    predictions = {}
    with progress_bar("eval", total=n * len(todo) if distributed.is_main() else None) as bar:
        for corruption, severity in todo:
            bar.describe(f"{corruption} s{severity}" if severity else "clean")
            metrics = CellMetrics(device, keep_predictions=cfg.save_predictions)
            for batch, batch_labels in cell_batches(images, labels, corruption, severity, official, cfg.seed,
                                                    batch_size, frost, offset=share.start, n=n):
                counter.update(metrics, batch, batch_labels)
            state = reduce_state(metrics.state())
            bar.advance(n)
            if distributed.is_main():
                store.commit(cell_row(corruption, severity, compute(state), dataset, source, cfg.seed, frost))
                if cfg.save_predictions:
                    predictions[(corruption, severity)] = state
    seconds = time.time() - started
    if distributed.is_main():
        if cfg.save_predictions:
            save_predictions(out, predictions, test.labels, cfg.seed)
        store.finish(seconds=round(seconds, 2), images_per_s=round(n * len(todo) / seconds, 1))
    rows = read_eval_csv(out) if distributed.is_main() else []
    clean = [r for r in rows if (r["corruption"], int(r["severity"])) == CLEAN]
    clean_error = float(clean[0]["error"]) if clean else float("nan")
    echo(f"clean error {clean_error:.2f}%  ({len(todo)} cells computed, {n * len(todo) / seconds:,.0f} img/s, "
         f"{seconds:.1f}s) -> {out}")
    return out


def model_fingerprint(subject: subjects.Subject) -> str | None:
    """What identifies the model's cells in the eval CSV: a trained run's checkpoint file hash, or a
    hash of how an external model was built (its spec, files, checkpoint hash, input convention).
    Cells computed for another fingerprint are recomputed."""
    if subject.trained:
        return file_sha256(subject.run_dir / CHECKPOINT) if (subject.run_dir / CHECKPOINT).is_file() else None
    described = json.dumps([subject.descriptions, vars(subject.options)], sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()


def cell_batches(images, labels, corruption: str, severity: int, official, seed: int, batch_size: int,
                 frost: str | None, offset: int = 0, n: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The (images, labels) batches of one cell over `images` (test images [offset, offset + len)
    of a test set of `n`): clean, from the official files, or generated by the protocol's chunk
    seeds (which depend on the images' global positions, hence `offset`)."""
    count = labels.shape[0]
    if (corruption, severity) == CLEAN or official is not None:
        if (corruption, severity) == CLEAN:
            source = images
        else:
            source = official.images(corruption, severity)[:n if n is not None else count][offset:offset + count]
        for start in range(0, count, batch_size):
            yield source[start:start + batch_size], labels[start:start + batch_size]
    else:
        for start, batch in generated_batches(images, corruption, severity, seed, batch_size, frost=frost or "auto",
                                              offset=offset):
            yield batch, labels[start:start + batch.shape[0]]


class Counter:
    """Feeds batches to a cell's metrics, the logits staying on the device (one host read per cell,
    in `compute`). When a batch does not fit in CUDA memory it is retried in halves, and the
    smaller size is kept for the rest of the evaluation."""

    def __init__(self, model, batch_size: int, device: torch.device, echo=print):
        self.model, self.batch_size, self.device, self.echo = model, batch_size, device, echo

    @torch.no_grad()
    def update(self, metrics: CellMetrics, images: torch.Tensor, labels: torch.Tensor) -> None:
        start = 0
        while start < images.shape[0]:
            size = self.batch_size
            try:
                batch = images[start:start + size].to(self.device, non_blocking=True)
                metrics.update(self.logits(batch), labels[start:start + size].to(self.device))
            except torch.cuda.OutOfMemoryError:
                self._halve(size)
                continue
            start += size

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """float32 logits at full precision, whatever autocast or TF32 setting is around: a bf16 (or
        TF32) argmax resolves near-ties differently, so GPU error rates would not match the CPU's."""
        with torch.autocast(self.device.type, enabled=False), full_fp32():
            return self.model(batch).float()

    def _halve(self, size: int) -> None:
        if size == 1:
            raise RobenchError("out of GPU memory with one image per batch; free the GPU (nvidia-smi shows who "
                               "holds it) or use --device cpu") from None
        self.batch_size = max(1, size // 2)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.echo(f"warning: out of GPU memory at batch size {size}; retrying with {self.batch_size} "
                  f"(pass --batch-size {self.batch_size} to start there)")


def reduce_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A cell's metric state combined over all ranks (identity without torchrun): the sums added in
    one collective (flattened into one float64 vector; exact for counts below 2**53), the per-image
    tensors gathered in rank order, which is the images' order (each rank holds a contiguous share)."""
    if distributed.world_size() == 1:
        return state
    sums = [k for k in CellMetrics.SUMS if k in state]
    flat = distributed.all_reduce_sum(torch.cat([state[k].reshape(-1).double() for k in sums]))
    out, at = {}, 0
    for k in sums:
        size = state[k].numel()
        out[k] = flat[at:at + size].reshape(state[k].shape).to(state[k].dtype)
        at += size
    for k in CellMetrics.PER_IMAGE:
        if k in state:
            parts = distributed.all_gather_objects(state[k].cpu())
            out[k] = torch.cat(parts).to(state[k].device)
    return out


def cell_row(corruption: str, severity: int, result: dict, dataset: str, source: str, seed: int,
             frost: str | None) -> dict:
    """One eval-CSV row (runfiles.EVAL_FIELDS): error in %, calibration metrics as fractions."""
    return dict(corruption=corruption, severity=severity, n=result["n"], correct=result["correct"],
                error=f"{100 * result['error']:.4f}", dataset=dataset, source=source, seed=seed,
                frost_textures=frost if corruption == "frost" else "",
                **{k: f"{result[k]:.6f}" for k in CALIBRATION_FIELDS})


def measure(model, images, labels, cells, official, seed: int, batch_size: int, frost: str | None, device,
            keep_predictions: bool = False) -> Iterator[tuple[tuple[str, int], CellMetrics]]:
    """Each cell's accumulated metrics, in order, in one process (the Python API's loop)."""
    n = labels.shape[0]
    counter = Counter(model, batch_size, device, echo=lambda _: None)
    with progress_bar("eval", total=n * len(cells)) as bar:
        for corruption, severity in cells:
            bar.describe(f"{corruption} s{severity}" if severity else "clean")
            metrics = CellMetrics(device, keep_predictions=keep_predictions)
            for batch, batch_labels in cell_batches(images, labels, corruption, severity, official, seed,
                                                    batch_size, frost):
                counter.update(metrics, batch, batch_labels)
            bar.advance(n)
            yield (corruption, severity), metrics


def open_official(folder: Path, test, dataset: str, names: list[str]) -> csets.OfficialCSet:
    """The released C-set in `folder`, checked before any cell: its labels are the test set's and
    the requested corruptions' files are whole."""
    official = csets.OfficialCSet(folder)
    n = len(test)
    if official.n < n or not torch.equal(official.labels()[:n], test.labels):
        raise RobenchError(f"the C-set in {folder} does not match the {dataset} test set (labels differ)")
    official.check(names)
    return official


def cell_sources(test, dataset: str, source: str, folder, device, names: list[str]):
    """(the clean images, on the device when corruptions are generated there; the official C-set or None)."""
    official = open_official(folder, test, dataset, names) if source == "official" else None
    images = test.images.to(device) if source == "generated" else test.images
    return images, official


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
    if frost == "procedural" and cfg.frost == "auto":  # "auto" that found the photographs says nothing
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
