"""Evaluation throughput (images/s) on the official-format path: memory-mapped .npy C-set -> model.

Builds a synthetic C-set in the released layout (uint8 (5N, 32, 32, 3) per corruption) in a temp dir,
then times `robench.evaluate` reading it the way `robench eval --source official` does, and, for
comparison, the way the AugMix reference evaluates (torchvision CIFAR dataset + per-image PIL ToTensor
+ Normalize in a DataLoader). Prints one JSON line per measurement.

  python benchmarks/eval_throughput.py [--model resnet18|small-cnn|none] [--n 10000] [--corruptions 3] [--device auto]

With --calibration it instead measures what recording calibration costs: eval's real cell loop
(robench.evaluate.cell_batches + forward) with the per-cell metrics accumulator (error, NLL, Brier,
ECE, RMS-CE) against the same loop that only counts top-1 hits on the device, the two alternated
over --rounds rounds in one process; prints the median overhead in %.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robench.data.csets import OfficialCSet
from robench.metrics import count_correct
from robench.models import build_model
from robench.runs import device_name, resolve_device


class NullModel(torch.nn.Module):
    """Stands in for a network: 10 'logits' read from the pixels, so only the data path is timed."""

    def forward(self, x):
        return x.flatten(1)[:, :10].float()


def make_cset(folder: Path, n: int, corruptions: list[str]) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
    for name in corruptions:
        np.save(folder / f"{name}.npy", data)
    np.save(folder / "labels.npy", rng.integers(0, 10, 5 * n).astype(np.uint8))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def robench_path(folder, corruptions, model, device, batch_size) -> float:
    cset = OfficialCSet(folder)
    labels = cset.labels()
    start = time.perf_counter()
    for name in corruptions:
        for severity in range(1, 6):
            count_correct(model, cset.images(name, severity), labels, batch_size, device)
    sync(device)
    return len(corruptions) * 5 * cset.n / (time.perf_counter() - start)


def reference_path(folder, corruptions, model, device, batch_size, workers) -> float:
    """AugMix's test_c: whole .npy into a torchvision-style dataset, PIL + ToTensor + Normalize per image."""
    from PIL import Image
    from torchvision import transforms

    preprocess = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])

    class NpyDataset(torch.utils.data.Dataset):
        def __init__(self, data, targets):
            self.data, self.targets = data, targets

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            return preprocess(Image.fromarray(self.data[i])), int(self.targets[i])

    labels = np.load(folder / "labels.npy")
    start, total = time.perf_counter(), 0
    with torch.no_grad():
        for name in corruptions:
            loader = torch.utils.data.DataLoader(NpyDataset(np.load(folder / f"{name}.npy"), labels),
                                                 batch_size=batch_size, num_workers=workers)
            for x, y in loader:
                # The model normalises itself; feed [0, 1] images to keep the work identical.
                model(((x * 0.5) + 0.5).to(device)).argmax(1)
                total += len(y)
    sync(device)
    return total / (time.perf_counter() - start)


class CountOnly:
    """Eval without calibration: top-1 hits summed on the device, read once per cell."""

    def __init__(self, device):
        self.correct = torch.zeros((), dtype=torch.long, device=device)

    def update(self, logits, labels):
        self.correct += (logits.argmax(1) == labels.to(logits.device)).sum()

    def result(self):
        return int(self.correct)


def eval_cells(folder, corruptions, model, device, batch_size, make_metrics) -> float:
    """Seconds for eval's cell loop over every (corruption, severity) of the C-set."""
    from robench.evaluate import cell_batches, forward

    cset = OfficialCSet(folder)
    labels = cset.labels()[:cset.n].long()
    start = time.perf_counter()
    for name in corruptions:
        for severity in range(1, 6):
            metrics = make_metrics(device)
            for batch, batch_labels in cell_batches(None, labels, name, severity, cset, 0, batch_size, None):
                metrics.update(forward(model, batch, device), batch_labels)
            metrics.result()
    sync(device)
    return time.perf_counter() - start


def calibration_cost(folder, corruptions, model, device, batch_size, rounds, common) -> None:
    from robench.metrics import CellMetrics

    impls = {"count only": CountOnly, "with calibration": CellMetrics}
    eval_cells(folder, corruptions, model, device, batch_size, CellMetrics)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in impls}
    for r in range(rounds):
        order = list(impls) if r % 2 == 0 else list(impls)[::-1]  # alternate A/B, then B/A
        for name in order:
            times[name].append(eval_cells(folder, corruptions, model, device, batch_size, impls[name]))
    ratios = sorted(c / a for a, c in zip(times["count only"], times["with calibration"]))
    for name, values in times.items():
        print(json.dumps({"bench": "eval_calibration", "impl": name, "median_s": round(sorted(values)[len(values) // 2], 4),
                          **common}))
    print(json.dumps({"bench": "eval_calibration", "overhead_pct": round(100 * (ratios[len(ratios) // 2] - 1), 2),
                      "paired_ratios": [round(x, 4) for x in ratios], "rounds": rounds, **common}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a robench model, or none for the data path alone")
    parser.add_argument("--n", type=int, default=2000, help="test images per severity (10000 in CIFAR-10-C)")
    parser.add_argument("--corruptions", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", action="store_true", help="measure the cost of recording calibration")
    parser.add_argument("--rounds", type=int, default=7, help="alternated rounds of --calibration")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    # --model none times the data path alone (read, convert, move), which is what robench changes.
    model = NullModel() if args.model == "none" else build_model(args.model, 10).to(device).eval()
    names = [f"corruption{i}" for i in range(args.corruptions)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_cset(folder, args.n, names)
        common = {"model": args.model, "device": device_name(device), "n_per_cell": args.n, "cells": 5 * args.corruptions}
        if args.calibration:
            calibration_cost(folder, names, model, device, args.batch_size, args.rounds, common)
            return
        ours = robench_path(folder, names, model, device, args.batch_size)
        print(json.dumps({"bench": "eval_official", "impl": "robench", "images_per_s": round(ours, 1), **common}))
        ref = reference_path(folder, names, model, device, args.batch_size, args.workers)
        print(json.dumps({"bench": "eval_official", "impl": "augmix-reference (PIL+DataLoader)",
                          "images_per_s": round(ref, 1), "workers": args.workers, **common}))
        print(json.dumps({"bench": "eval_official", "speedup": round(ours / ref, 2), **common}))


if __name__ == "__main__":
    main()
