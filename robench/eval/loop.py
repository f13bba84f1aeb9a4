"""`robench eval`: the one per-cell loop, and the verb that runs it into a run folder.

What is evaluated (a run folder, a model robench did not train, an ensemble) is
robench.eval.subjects; where a cell's images come from is robench.eval.sources; a cell's metrics
are robench.eval.metrics.CellMetrics; which cells are done, and how each is committed, is
robench.runfolder.cellstore; ranks are robench.runtime.distributed. This module owns the loop:
`measure` feeds each cell's batches through a `Forward` (float32 logits, the batch halved when CUDA
runs out of memory) into the cell's metrics on the device and combines them over the ranks; the
CLI (`evaluate_run`), the Python API (robench.eval.api) and torchrun all go through it.
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from robench.config import EvalConfig, eval_batch_size
from robench.corruptions.benchmarks import PROTOCOL_OF, check_own_generator, check_size, parse_benchmark, parse_names
from robench.corruptions.perturbations import generated_sequences
from robench.corruptions.protocol import CHUNK, parse_severities
from robench.data import Split, load_split, psets
from robench.data.download import set_data_dir
from robench.data.stream import ChunkedSplit
from robench.errors import RobenchError
from robench.eval import subjects
from robench.eval.cell import Cell, requested
from robench.eval.metrics import CellMetrics, compute
from robench.eval.perturbation import measure_perturbation
from robench.eval.sources import (CellImages, cell_images, first_images, frost_source, open_official, resolve_protocol,
                                  resolve_source)
from robench.progress import progress_bar
from robench.runfolder.cellstore import CellStore
from robench.runfolder.files import (CALIBRATION_FIELDS, EVAL_FIELDS, P_FIELDS, RUN_JSON, SETTING_DEFAULTS,
                                     STABILITY_FIELDS, atomic_write_bytes, eval_csv_path, predictions_path,
                                     read_eval_csv)
from robench.runtime import distributed
from robench.runtime.device import device_name, full_fp32

# Released -P sequences read per call (31 frames of 32 px each: ~10 MB of uint8 per 100).
P_SEQUENCES_PER_CALL = 100

# ----------------------------------------------------------------------------- the per-cell loop


class Forward:
    """The model's forward pass over a cell's batches, feeding each batch's logits to the cell's
    metrics on the device (one host read per cell, in `compute`). When a batch does not fit in CUDA
    memory it is retried in halves, and the smaller size is kept for the rest of the evaluation."""

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


def measure(forward: Forward, cells: Iterable[Cell], images: CellImages, keep_predictions: bool = False,
            bar=None) -> Iterator[tuple[Cell, dict[str, torch.Tensor]]]:
    """Each cell's metric state in order, combined over the ranks (each rank holds its share of the
    images; without torchrun the whole set). Read a state's numbers with metrics.compute."""
    for cell in cells:
        if bar is not None:
            bar.describe(cell.label)
        metrics = CellMetrics(forward.device, keep_predictions=keep_predictions)
        for batch, labels in images.batches(cell):
            forward.update(metrics, batch, labels)
        state = reduce_state(metrics.state())
        if bar is not None:
            bar.advance(images.n if images.n is not None else images.labels.shape[0])
        yield cell, state


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


@dataclass(frozen=True)
class Setting:
    """What every row of one evaluation records beside its cell and numbers (runfolder.files
    EVAL_FIELDS): the images' dataset and source, the corruption seed, and SETTING_FIELDS."""

    dataset: str
    source: str
    seed: int
    benchmark: str
    protocol: str
    storage: str
    subset: str = SETTING_DEFAULTS["subset"]  # or a named subset (robustbench-5k); a --limit shows in `n`

    @property
    def columns(self) -> dict:
        return dataclasses.asdict(self)


def cell_row(cell: Cell, result: dict, setting: Setting, frost: str | None) -> dict:
    """One eval-CSV row (runfolder.files.EVAL_FIELDS): error in %, calibration metrics as fractions."""
    return dict(corruption=cell.corruption, severity=cell.severity, n=result["n"], correct=result["correct"],
                error=f"{100 * result['error']:.4f}", frost_textures=frost if cell.corruption == "frost" else "",
                **{k: f"{result[k]:.6f}" for k in CALIBRATION_FIELDS}, **setting.columns)


# ----------------------------------------------------------------------------- `robench eval`


@dataclass
class Plan:
    """What one `robench eval` asks for, decided before any model is built: the subject, its test
    set, where the corrupted images come from and the cells."""

    cfg: EvalConfig
    subject: subjects.Subject
    test: Split
    source: str
    folder: Path | None
    frost: str | None
    names: list[str]
    severities: list[int]
    setting: Setting
    tag: str  # beside the dataset in the eval CSV's name (runfolder.files.eval_csv_path)

    @property
    def cells(self) -> list[Cell]:
        if self.setting.benchmark == "p":  # a perturbation is one cell; -P has no clean cell or severities
            return [Cell(name, 0) for name in self.names]
        return requested(self.names, self.severities)

    def store(self) -> CellStore:
        """The eval CSV as a store of this model's finished cells. A trained run's model is known by
        its checkpoint; an external subject's only once built (`Subject.build` records how)."""
        return CellStore(eval_csv_path(self.subject.run_dir, self.subject.dataset, self.source, self.tag),
                         dict(self.setting.columns, n=len(self.test),
                              checkpoint_sha256=subjects.model_fingerprint(self.subject)),
                         P_FIELDS if self.setting.benchmark == "p" else EVAL_FIELDS)


FILE_DATASETS = ("imagenet", "tiny-imagenet", "folder:", "hf-stream:")


def file_options(cfg: EvalConfig, dataset: str) -> dict:
    """The options of an image-file dataset (robench.data.folders) that this evaluation sets; an
    error when one is set for a dataset held in memory, where it would do nothing."""
    options = dict(data_path=cfg.data_path, decode=cfg.decode, cache_dir=cfg.cache_dir,
                   subset=None if cfg.subset == "all" else cfg.subset)
    given = {k: v for k, v in options.items() if v is not None}
    if given and not dataset.startswith(FILE_DATASETS):
        flag = "--" + next(iter(given)).replace("_", "-")
        raise RobenchError(f"{flag} applies to image-file datasets ({', '.join(FILE_DATASETS)}PATH), not {dataset}")
    return given


def plan(cfg: EvalConfig, echo: Callable[[str], None] = print) -> Plan:
    """Resolve a validated EvalConfig into a Plan. `robench sweep` asks the same plan's store which
    cells are done, so a sweep and an evaluation never disagree about it."""
    subject = subjects.resolve(cfg)
    benchmark = parse_benchmark(cfg.benchmark)
    names, severities = parse_names(benchmark, cfg.corruptions), parse_severities(cfg.severities)
    source, folder = resolve_source(cfg.source, subject.dataset, cfg.c_dir, benchmark)
    frost = frost_source(cfg.frost, names, source, echo) if benchmark == "c" else None
    test = load_split(subject.dataset, False, limit=subject.limit, **subject.split_options,
                      **file_options(cfg, subject.dataset))
    size = tuple(first_images(test, 1).shape[-2:])
    check_size(benchmark, *size, subject.dataset)
    check_own_generator(benchmark, cfg.protocol, cfg.storage)
    if benchmark == "c":
        protocol, storage, tag = resolve_protocol(cfg.protocol, cfg.storage, size, source, subject.dataset, echo)
    else:  # C-bar and -P: one generator each
        protocol, storage, tag = PROTOCOL_OF[benchmark], "none", benchmark
    setting = Setting(subject.dataset, source, cfg.seed, benchmark, protocol, storage, cfg.subset)
    if setting.subset != "all":  # a subset's cells get their own file, beside the whole set's
        tag = "-".join(part for part in (tag, setting.subset) if part)
    return Plan(cfg, subject, test, source, folder, frost, names, severities, setting, tag)


def evaluate_run(cfg: EvalConfig, echo: Callable[[str], None] = print) -> Path:
    """Evaluate a run folder, or a model robench did not train (robench.eval.subjects), into
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
        return _evaluate_run(cfg, device, started, echo if distributed.is_main() else _quiet)
    finally:
        distributed.shutdown()


def _evaluate_run(cfg: EvalConfig, device: torch.device, started: float, echo) -> Path:
    p = plan(cfg, echo)
    subject, test, dataset, source, names, cells = p.subject, p.test, p.subject.dataset, p.source, p.names, p.cells
    model = subject.build(test.num_classes, first_images(test, 2), device)
    store = p.store()
    n = len(test)
    batch_size = eval_batch_size(cfg.batch_size, device)
    # Released files are checked before anything is written; a P-set has no labels.npy (not a C-set).
    if p.setting.benchmark == "p":
        n, sequences = sequences_of(test, p.folder if source == "official" else None, names, cfg.seed, device,
                                    _chunk_share)
    official = (open_official(p.folder, test, dataset, names, p.severities)
                if source == "official" and p.setting.benchmark != "p" else None)
    if subject.trained and not (subject.run_dir / RUN_JSON).exists():
        echo(f"note: {subject.run_dir} has no {RUN_JSON} (its training did not finish); evaluating its last "
             f"checkpoint (epoch {subject.descriptions[0].get('epoch', '?')})")

    record = dict(corruptions=names, severities=p.severities, frost_textures=p.frost, force=cfg.force,
                  limit=subject.limit,
                  checkpoint_epoch=subject.descriptions[0].get("epoch") if subject.trained else None,
                  batch_size=batch_size, ranks=distributed.world_size(), device=device_name(device),
                  c_dir=str(p.folder) if p.folder else None)
    todo = _shared(lambda: store.begin(cells, p.frost, cfg.force, record))  # rank 0 decides, before any work
    if distributed.is_main():
        subject.write_run_json(model, dataset, test.num_classes, device_name(device))
    if p.setting.benchmark == "p":
        return _evaluate_p(p, Forward(model, batch_size, device, echo), store, todo, n, sequences, started, echo)
    # Generated corruptions run on the device (a streamed test set moves there chunk by chunk).
    images = cell_images(test, _chunk_share(n), official, cfg.seed, batch_size, p.frost,
                         device if source == "generated" else None, protocol=p.setting.protocol,
                         storage=p.setting.storage != "none", benchmark=p.setting.benchmark)
    forward = Forward(model, batch_size, device, echo)
    skipped = len(cells) - len(todo)
    echo(f"evaluating {' + '.join(subject.specs)} on {dataset} ({n} test images, {len(cells) - 1} corrupted cells, "
         f"{source}, protocol {p.setting.protocol}"
         + (f" stored as {p.setting.storage}" if p.setting.storage != "none" else "") + f") on {device_name(device)}"
         + (f" x {distributed.world_size()} ranks" if distributed.world_size() > 1 else "")
         + (f"; {skipped} cells already done are skipped (--force recomputes them)" if skipped else ""))
    predictions = {}
    with progress_bar("eval", total=n * len(todo) if distributed.is_main() else None) as bar:
        for cell, state in measure(forward, todo, images, cfg.save_predictions, bar):
            if distributed.is_main():
                store.commit(cell_row(cell, compute(state), p.setting, p.frost))
                if cfg.save_predictions:
                    predictions[cell] = state
    seconds = time.time() - started
    out = store.path
    if distributed.is_main():
        if cfg.save_predictions:
            save_predictions(out, predictions, test.labels, cfg.seed)
        store.finish(seconds=round(seconds, 2), images_per_s=round(n * len(todo) / seconds, 1))
    rows = read_eval_csv(out) if distributed.is_main() else []
    clean = [r for r in rows if Cell.of(r).is_clean]
    clean_error = float(clean[0]["error"]) if clean else float("nan")
    echo(f"clean error {clean_error:.2f}%  ({len(todo)} cells computed, {n * len(todo) / seconds:,.0f} img/s, "
         f"{seconds:.1f}s) -> {out}")
    return out


@dataclass
class Sequences:
    """Where the -P sequences of test images [start, stop) come from: the released files, or robench's
    generator on `images` (those test images, on the device), each sequence seeded by its index."""

    official: psets.OfficialPSet | None
    images: torch.Tensor | None
    seed: int
    start: int
    stop: int

    def of(self, perturbation: str):
        if self.official is not None:
            return self.official.sequences(perturbation, P_SEQUENCES_PER_CALL, self.start, self.stop)
        return generated_sequences(self.images, perturbation, self.seed, offset=self.start)


def sequences_of(test, folder: Path | None, names: list[str], seed: int, device: torch.device,
                 share: Callable[[int], slice] = lambda n: slice(0, n)) -> tuple[int, Sequences]:
    """(n, the Sequences of this rank's share): the released P-set in `folder` (checked, before any
    work), else sequences generated from the test images (decoded first, for image files)."""
    official = psets.OfficialPSet(folder) if folder is not None else None
    n = min(len(test), official.check(names)) if official is not None else len(test)
    part = share(n)
    images = None
    if official is None:
        images = test.read(part.start, part.stop) if isinstance(test, ChunkedSplit) else test.images[part]
        images = images.to(device)
    return n, Sequences(official, images, seed, part.start, part.stop)


def measure_stability(forward: Forward, names: Iterable[str], sequences: Sequences, bar=None):
    """Each perturbation's StabilityState in order, combined over the ranks (the -P counterpart of
    `measure`)."""
    for name in names:
        if bar is not None:
            bar.describe(name)
        state = measure_perturbation(lambda x: forward.logits(x.to(forward.device)), sequences.of(name), name,
                                     frames_per_call=forward.batch_size)
        if distributed.world_size() > 1:  # a collective: every rank must call it, not only rank 0
            for other in distributed.all_gather_objects(state)[1:]:
                state.merge(other)
        if bar is not None:
            bar.advance(sequences.stop - sequences.start)
        yield name, state


def stability_row(perturbation: str, result: dict, setting: Setting, text: bool = True) -> dict:
    """One -P eval-CSV row (runfolder.files.P_FIELDS): the means over sequences, as fractions, written
    as the CSV holds them (6 decimals) or, with text=False, as the numbers themselves."""
    values = {k: f"{result[k]:.6f}" if text else result[k] for k in STABILITY_FIELDS}
    return dict(corruption=perturbation, severity=0, n=result["n"], frames=result["frames"], **values,
                **setting.columns)


def _evaluate_p(p: Plan, forward: Forward, store: CellStore, todo: list[Cell], n: int, sequences: Sequences,
                started: float, echo) -> Path:
    """The -P cells: each perturbation's sequences of n (this rank's share of whole chunks of them)
    through the model, their stability combined over the ranks."""
    echo(f"evaluating {' + '.join(p.subject.specs)} on {p.subject.dataset}-P ({n} sequences x {len(p.names)} "
         f"perturbations, {p.source}) on {device_name(forward.device)}"
         + (f"; {len(p.cells) - len(todo)} perturbations already done are skipped" if len(todo) < len(p.cells) else ""))
    frames = 0
    with progress_bar("eval -P", total=n * len(todo) if distributed.is_main() else None) as bar:
        for name, state in measure_stability(forward, [cell.corruption for cell in todo], sequences, bar):
            if distributed.is_main():
                result = state.result()
                frames += result["n"] * result["frames"]
                store.commit(stability_row(name, result, p.setting))
    seconds = time.time() - started
    if distributed.is_main():
        store.finish(seconds=round(seconds, 2), images_per_s=round(frames / seconds, 1))
        rows = read_eval_csv(store.path)
        done = [float(r["flip_prob"]) for r in rows]
        echo(f"mean flip probability {100 * sum(done) / max(1, len(done)):.2f}% over {len(done)} perturbations "
             f"({len(todo)} computed, {frames / seconds:,.0f} frames/s, {seconds:.1f}s) -> {store.path}")
    return store.path


def save_predictions(csv_path: Path, predictions: dict, labels: torch.Tensor, seed: int) -> None:
    """eval/<dataset>-<source>-predictions.npz: `labels` and, per cell, `<corruption>_s<severity>_prediction`
    (int64) and `..._confidence` (float32, the top softmax probability), in test-set order. Cells of
    an earlier file with the same seed that were not recomputed are kept."""
    import numpy as np

    path = predictions_path(csv_path)
    arrays = {}
    if path.exists():
        with np.load(path) as old:
            if int(old["seed"]) == seed and np.array_equal(old["labels"], labels.numpy()):
                arrays = {k: old[k] for k in old.files}
    arrays.update(labels=labels.numpy(), seed=np.array(seed))
    for cell, state in predictions.items():
        arrays[f"{cell.key}_prediction"] = state["prediction"].cpu().numpy()
        arrays[f"{cell.key}_confidence"] = state["confidence"].cpu().numpy()
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
