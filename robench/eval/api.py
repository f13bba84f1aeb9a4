"""The Python API of eval: `robench.evaluate(model, ...)` -> a pandas DataFrame, one row per cell,
and `robench.summarize(frame)` -> clean error, mCE and calibration. No run folder is read or written.

    import robench
    cells = robench.evaluate(model, dataset="cifar10", corruptions="all", severities="1-5")
    cells.pipe(robench.summarize)

The cells, their images and the per-cell loop are the ones `robench eval` uses (robench.eval.loop);
every default is EvalConfig's.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robench.config import DEFAULT_DATASET, EvalConfig, eval_batch_size
from robench.corruptions.benchmarks import PROTOCOL_OF, check_own_generator, check_size, parse_benchmark, parse_names
from robench.corruptions.protocol import parse_severities
from robench.data import load_split
from robench.data.download import set_data_dir
from robench.errors import RobenchError
from robench.eval import subjects
from robench.eval.cell import CLEAN, EXTRA_CELLS, STANDARD_CELLS, requested
from robench.eval.loop import Forward, Setting, cell_row, measure, measure_stability, sequences_of, stability_row
from robench.eval.metrics import compute
from robench.eval.sources import (cell_images, first_images, frost_source, open_official, resolve_protocol,
                                  resolve_source)
from robench.models import external
from robench.progress import progress_bar
from robench.runfolder.files import CALIBRATION_FIELDS, EVAL_FIELDS, P_FIELDS
from robench.runtime.device import resolve_device

_DEFAULT = EvalConfig()


def evaluate(model: nn.Module | str | Sequence, dataset: str = DEFAULT_DATASET,
             corruptions: str = _DEFAULT.corruptions, severities: str = _DEFAULT.severities,
             source: str = _DEFAULT.source, device: str | torch.device | None = None,
             batch_size: int | None = _DEFAULT.batch_size, seed: int = _DEFAULT.seed, limit: int | None = _DEFAULT.limit,
             frost: str = _DEFAULT.frost, c_dir: str | None = _DEFAULT.c_dir, data_dir: str | None = _DEFAULT.data_dir,
             input_range: str | None = _DEFAULT.input_range, normalize: str | None = _DEFAULT.normalize,
             image_size: int | None = _DEFAULT.image_size, checkpoint: str | None = _DEFAULT.checkpoint,
             pretrained: bool = _DEFAULT.pretrained, protocol: str = _DEFAULT.protocol,
             storage: bool = _DEFAULT.storage, benchmark: str = _DEFAULT.benchmark):
    """Evaluate `model` on the clean test set and every requested (corruption, severity) cell.

    `model` is an `nn.Module` (fed float images in [0, 1], or in `input_range`, normalised with
    `normalize` if given: by default it normalises itself), or anything `robench eval` accepts (a run
    folder, "timm:<name>", "torchvision:<name>", "file.py:factory", a TorchScript file), or a list
    of these, evaluated as one ensemble (mean softmax). `protocol` and `storage` choose the generator
    table of generated corruptions as `robench eval --protocol` does; `benchmark` is "c" (the -C
    corruptions), "c-bar" or "p" as for `robench eval --benchmark`. Returns a DataFrame with the
    columns of the eval CSV, in its order: error in %, nll, brier, ece and rms_ce as fractions (for
    "p": one row per perturbation with the -P file's columns, flip_prob, top5_dist, zipf_dist).
    """
    import pandas as pd

    set_data_dir(data_dir)
    EvalConfig(run="<model>", corruptions=corruptions, severities=severities, source=source, batch_size=batch_size,
               seed=seed, limit=limit, frost=frost, c_dir=c_dir, input_range=input_range,
               image_size=image_size, protocol=protocol, storage=storage, benchmark=benchmark).validate()
    benchmark = parse_benchmark(benchmark)
    names = parse_names(benchmark, corruptions)
    cells = requested(names, parse_severities(severities))
    device = resolve_device(str(device) if device is not None else _DEFAULT.device)
    source_, folder = resolve_source(source, dataset, c_dir, benchmark)
    frost_ = frost_source(frost, names, source_, lambda _: None) if benchmark == "c" else None
    test = load_split(dataset, False, limit=limit)
    size = tuple(first_images(test, 1).shape[-2:])
    check_size(benchmark, *size, dataset)
    check_own_generator(benchmark, protocol, storage)
    if benchmark == "c":
        protocol_, storage_, _ = resolve_protocol(protocol, storage, size, source_, dataset, lambda _: None)
    else:
        protocol_, storage_ = PROTOCOL_OF[benchmark], "none"
    setting = Setting(dataset, source_, seed, benchmark, protocol_, storage_)
    net = _build(model, test, device, subjects.ModelOptions(checkpoint, pretrained, input_range, normalize, image_size))
    if benchmark == "p":
        return _stability(net, test, names, setting, folder, device, eval_batch_size(batch_size, device))

    official = None
    if source_ == "official":
        official = open_official(folder, test, dataset, names, parse_severities(severities))
    batch_size = eval_batch_size(batch_size, device)
    images = cell_images(test, slice(0, len(test)), official, seed, batch_size, frost_,
                         device if source_ == "generated" else None, protocol=protocol_, storage=storage_ != "none",
                         benchmark=benchmark)
    forward = Forward(net, batch_size, device, echo=lambda _: None)
    with progress_bar("eval", total=len(test) * len(cells)) as bar:
        rows = [cell_row(cell, compute(state), setting, frost_)
                for cell, state in measure(forward, cells, images, bar=bar)]
    frame = pd.DataFrame(rows, columns=EVAL_FIELDS)
    for column in ["error", *CALIBRATION_FIELDS]:
        frame[column] = frame[column].astype(float)
    return frame


def _stability(net: nn.Module, test, names: list[str], setting: Setting, folder, device: torch.device,
               batch_size: int):
    """The -P rows: each perturbation's sequences (released in `folder`, else generated from the test
    images with their per-sequence seeds) through the model, as `robench eval --benchmark p` reads them."""
    import pandas as pd

    forward = Forward(net, batch_size, device, echo=lambda _: None)
    _, sequences = sequences_of(test, folder if setting.source == "official" else None, names, setting.seed, device)
    rows = [stability_row(name, state.result(), setting, text=False)
            for name, state in measure_stability(forward, names, sequences)]
    return pd.DataFrame(rows, columns=P_FIELDS)


def _build(model, test, device: torch.device, options: subjects.ModelOptions) -> nn.Module:
    """The model (or the ensemble of a list) on the device, its class count checked on two images."""
    members = list(model) if isinstance(model, (list, tuple)) else [model]
    built = []
    for member in members:
        if isinstance(member, nn.Module):
            conv = external.convention("module", "", options.input_range, options.normalize, options.image_size)
            net = external.InputAdapter(member, conv)
            subjects.eval_mode(net)
            label = type(member).__name__
        elif isinstance(member, (str, bytes)) or hasattr(member, "__fspath__"):
            net, label = subjects.build_member(str(member), test.num_classes, options)[0], str(member)
        else:
            raise RobenchError(f"model must be an nn.Module, a model name or path, or a list of them; "
                               f"got {type(member).__name__}")
        net = net.to(device)
        subjects.check_classes(net, first_images(test, 2).to(device), test.num_classes, label)
        built.append(net)
    return built[0] if len(built) == 1 else external.Ensemble(built)


def summarize(cells) -> "pd.Series":  # noqa: F821
    """Clean error, mCE (mean error over the 15 standard corruptions x 5 severities, %) and extra
    error (the 4 extra ones), and each calibration metric on clean data (`clean_<m>`) and averaged
    over the same 75 cells as mCE (`c_<m>`). NaN where a cell is missing. Use with
    `robench.evaluate(...).pipe(robench.summarize)`; a frame of several (dataset, source) pairs gives
    one row per pair."""
    import pandas as pd

    if {"dataset", "source"} <= set(cells.columns) and cells[["dataset", "source"]].drop_duplicates().shape[0] > 1:
        return cells.groupby(["dataset", "source"]).apply(summarize, include_groups=False)
    key = list(zip(cells["corruption"], cells["severity"].astype(int)))
    by_cell = cells.assign(_key=key).set_index("_key")

    def mean_over(wanted, column):
        if not all(k in by_cell.index for k in wanted):
            return float("nan")
        return float(by_cell.loc[list(wanted), column].astype(float).mean())

    clean = by_cell.loc[[CLEAN]] if CLEAN in by_cell.index else None
    out = {"clean_error": float(clean["error"].iloc[0]) if clean is not None else float("nan"),
           "mCE": mean_over(STANDARD_CELLS, "error"), "extra_error": mean_over(EXTRA_CELLS, "error")}
    for m in CALIBRATION_FIELDS:
        if m in cells.columns:
            out[f"clean_{m}"] = float(clean[m].iloc[0]) if clean is not None else float("nan")
            out[f"c_{m}"] = mean_over(STANDARD_CELLS, m)
    return pd.Series(out)
