"""The Python API of eval: `robench.evaluate(model, ...)` -> a pandas DataFrame, one row per cell,
and `robench.summarize(frame)` -> clean error, mCE and calibration. No run folder is read or written.

    import robench
    cells = robench.evaluate(model, dataset="cifar10", corruptions="all", severities="1-5")
    cells.pipe(robench.summarize)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robench.corruptions.protocol import CLEAN, EXTRA, STANDARD, parse_corruptions, parse_severities
from robench.data import load_split
from robench.data.download import set_data_dir
from robench.errors import RobenchError
from robench.runfiles import CALIBRATION_FIELDS

COLUMNS = ["corruption", "severity", "n", "correct", "error", *CALIBRATION_FIELDS, "dataset", "source", "seed",
           "frost_textures"]


def evaluate(model: nn.Module | str | Sequence, dataset: str = "cifar10", corruptions: str = "all",
             severities: str = "1-5", source: str = "auto", device: str | torch.device | None = None,
             batch_size: int | None = None, seed: int = 0, limit: int | None = None, frost: str = "auto",
             c_dir: str | None = None, data_dir: str | None = None, input_range: str = "0-1",
             normalize: str | None = None, image_size: int | None = None, checkpoint: str | None = None,
             pretrained: bool = False):
    """Evaluate `model` on the clean test set and every requested (corruption, severity) cell.

    `model` is an `nn.Module` (fed float images in [0, 1], or in `input_range`, normalised with
    `normalize` if given: by default it normalises itself), or anything `robench eval` accepts (a run
    folder, "timm:<name>", "torchvision:<name>", "file.py:factory", a TorchScript file), or a list
    of these, evaluated as one ensemble (mean softmax). Returns a DataFrame with the columns of the
    eval CSV: error in %, nll, brier, ece and rms_ce as fractions.
    """
    import pandas as pd

    from robench import subjects
    from robench.config import EvalConfig, eval_batch_size
    from robench.evaluate import _frost_source, cell_row, cell_sources, measure, resolve_source
    from robench.models import external
    from robench.runs import resolve_device

    set_data_dir(data_dir)
    cfg = EvalConfig(run="<model>", corruptions=corruptions, severities=severities, source=source,
                     batch_size=batch_size, seed=seed, limit=limit, frost=frost, c_dir=c_dir).validate()
    names, severities_ = parse_corruptions(corruptions), parse_severities(severities)
    device = resolve_device(str(device) if device is not None else "auto")
    source_, folder = resolve_source(source, dataset, c_dir)
    frost_ = _frost_source(cfg, names, source_, lambda _: None)
    test = load_split(dataset, False, limit=limit)
    options = subjects.ModelOptions(checkpoint, pretrained, input_range, normalize, image_size)
    members = list(model) if isinstance(model, (list, tuple)) else [model]
    built = []
    for member in members:
        if isinstance(member, nn.Module):
            conv = external.convention("module", "", input_range, normalize, image_size)
            net = external.InputAdapter(member, conv)
            subjects._eval_mode(net)
            label = type(member).__name__
        elif isinstance(member, (str, bytes)) or hasattr(member, "__fspath__"):
            net, label = subjects.build_member(str(member), test.num_classes, options)[0], str(member)
        else:
            raise RobenchError(f"model must be an nn.Module, a model name or path, or a list of them; "
                               f"got {type(member).__name__}")
        net = net.to(device)
        subjects.check_classes(net, test.images[:2].to(device), test.num_classes, label)
        built.append(net)
    net = built[0] if len(built) == 1 else external.Ensemble(built)

    images, official = cell_sources(test, dataset, source_, folder, device, names)
    cells = [CLEAN] + [(c, s) for c in names for s in severities_]
    batch_size = eval_batch_size(batch_size, device)
    rows = [cell_row(c, s, metrics.result(), dataset, source_, seed, frost_)
            for (c, s), metrics in measure(net, images, test.labels, cells, official, seed, batch_size, frost_, device)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ["error", *CALIBRATION_FIELDS]:
        frame[column] = frame[column].astype(float)
    return frame


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

    def mean_over(corruptions, column):
        wanted = [(c, s) for c in corruptions for s in range(1, 6)]
        if not all(k in by_cell.index for k in wanted):
            return float("nan")
        return float(by_cell.loc[wanted, column].astype(float).mean())

    clean = by_cell.loc[[CLEAN]] if CLEAN in by_cell.index else None
    out = {"clean_error": float(clean["error"].iloc[0]) if clean is not None else float("nan"),
           "mCE": mean_over(STANDARD, "error"), "extra_error": mean_over(EXTRA, "error")}
    for m in CALIBRATION_FIELDS:
        if m in cells.columns:
            out[f"clean_{m}"] = float(clean[m].iloc[0]) if clean is not None else float("nan")
            out[f"c_{m}"] = mean_over(STANDARD, m)
    return pd.Series(out)
