"""Evaluation throughput (images/s): clean + corruptions x 5 severities, end to end.

Builds a synthetic C-set in the released layout (uint8 (5N, 32, 32, 3) per corruption, one file
hard-linked under every name) in a temp dir, then times
- robench on the official files (memory-mapped, as `robench eval --source official` reads them),
- robench generating the corruptions on the device (`--source generated`: the protocol's chunks),
- the AugMix reference's loop (per-image PIL ToTensor + Normalize in a DataLoader) and
- RobustBench's loop (each .npy loaded again per severity, fp32, batches of 100),
the two comparators on --reference-corruptions corruptions only (they are slow; images/s compare).
robench's counts use float32 logits (see robench/eval/loop.py, Forward.logits); `robench_bf16_forward` times the same
model under bf16 autocast for reference (not what eval reports). Prints one JSON line per figure.

  python benchmarks/eval_throughput.py [--model resnet18|small-cnn|none] [--n 10000] [--corruptions 19] [--device auto]

On CUDA, `--n 10000 --corruptions 19` is CIFAR-10-C's size: 960,000 images (target: under 10 s).

With --calibration it instead measures what recording calibration costs: eval's real cell loop
(robench.eval.sources.CellImages + robench.eval.loop.Forward) with the per-cell metrics accumulator (error, NLL, Brier,
ECE, RMS-CE) against the same loop that only counts top-1 hits on the device, the two alternated
over --rounds rounds in one process; prints the median overhead in %.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robench.data.csets import OfficialCSet
from robench.eval.metrics import count_correct
from robench.models import build_model
from robench.runtime.device import device_name, resolve_device


class NullModel(torch.nn.Module):
    """Stands in for a network: 10 'logits' read from the pixels, so only the data path is timed."""

    def forward(self, x):
        return x.flatten(1)[:, :10].float()


def make_cset(folder: Path, n: int, corruptions: list[str]) -> None:
    rng = np.random.default_rng(0)
    np.save(folder / f"{corruptions[0]}.npy", rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8))
    for name in corruptions[1:]:  # the same bytes under every name: no 19 x 150 MB of writing
        os.link(folder / f"{corruptions[0]}.npy", folder / f"{name}.npy")
    np.save(folder / "labels.npy", rng.integers(0, 10, 5 * n).astype(np.uint8))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def robench_path(folder, corruptions, model, device, batch_size) -> tuple[float, float]:
    """(images/s, seconds) of clean + every cell read from the official-layout files."""
    cset = OfficialCSet(folder)
    labels = cset.labels()
    start = time.perf_counter()
    count_correct(model, cset.images(corruptions[0], 1), labels, batch_size, device)  # stands in for clean
    for name in corruptions:
        for severity in range(1, 6):
            count_correct(model, cset.images(name, severity), labels, batch_size, device)
    sync(device)
    seconds = time.perf_counter() - start
    return (len(corruptions) * 5 + 1) * cset.n / seconds, seconds


def generated_path(corruptions, model, device, n, batch_size) -> tuple[float, float]:
    """(images/s, seconds) of clean + every cell of robench's own engine on the device, counted
    as `robench eval --source generated` counts (one read per cell)."""
    from robench.corruptions.protocol import CORRUPTIONS
    from robench.corruptions.registry import generated_batches
    from robench.eval.metrics import correct_on_device

    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images, labels = images.to(device), torch.randint(0, 10, (n,)).to(device)
    names = [CORRUPTIONS[i % len(CORRUPTIONS)] for i in range(len(corruptions))]
    warm = next(generated_batches(images[:500], "zoom_blur", 1, 0, 500))[1]
    correct_on_device(model, warm, labels[:500], 500, device)
    sync(device)
    start = time.perf_counter()
    int(correct_on_device(model, images, labels, batch_size, device))
    for name in names:
        for severity in range(1, 6):
            total = torch.zeros((), dtype=torch.long, device=device)
            for s, batch in generated_batches(images, name, severity, 0, batch_size, frost="procedural"):
                total += correct_on_device(model, batch, labels[s:s + batch.shape[0]], batch.shape[0], device)
            int(total)
    sync(device)
    seconds = time.perf_counter() - start
    return (len(names) * 5 + 1) * n / seconds, seconds


def bf16_forward(model, device, n, batch_size) -> float:
    """images/s of the bare forward under bf16 autocast (CUDA only): what eval would cost without
    its float32 logits."""
    x = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        model(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(max(1, n // batch_size)):
            model(x).argmax(1)
        sync(device)
    return max(1, n // batch_size) * batch_size / (time.perf_counter() - start)


def robustbench_path(folder, corruptions, model, device) -> float:
    """RobustBench's load_cifar10c + clean_accuracy: every .npy loaded whole again per severity,
    the severity's rows to a float tensor, then fp32 batches of 100 moved to the device."""
    labels_all = np.load(folder / "labels.npy")
    start, total = time.perf_counter(), 0
    with torch.no_grad():
        for name in corruptions:
            for severity in range(1, 6):
                data = np.load(folder / f"{name}.npy")
                n = data.shape[0] // 5
                x = torch.tensor(data[(severity - 1) * n:severity * n]).permute(0, 3, 1, 2).float() / 255
                y = torch.tensor(labels_all[(severity - 1) * n:severity * n])
                correct = 0.0
                for b in range(0, n, 100):
                    out = model(x[b:b + 100].to(device))
                    correct += (out.max(1)[1] == y[b:b + 100].to(device)).float().sum()
                total += n
    sync(device)
    return total / (time.perf_counter() - start)


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
    from robench.eval.cell import grid
    from robench.eval.loop import Forward
    from robench.eval.sources import CellImages

    forward = Forward(model, batch_size, device, echo=lambda _: None)
    cset = OfficialCSet(folder)
    labels = cset.labels()[:cset.n].long()
    images = CellImages(None, labels, cset, 0, batch_size, None)
    start = time.perf_counter()
    for cell in grid(corruptions):
        metrics = make_metrics(device)
        for batch, batch_labels in images.batches(cell):
            forward.update(metrics, batch, batch_labels)
        metrics.result()
    sync(device)
    return time.perf_counter() - start


def calibration_cost(folder, corruptions, model, device, batch_size, rounds, common) -> None:
    from robench.eval.metrics import CellMetrics

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
    parser.add_argument("--corruptions", type=int, default=2, help="19 in CIFAR-10-C")
    parser.add_argument("--reference-corruptions", type=int, default=2, help="corruptions the comparators run")
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
    few = names[:args.reference_corruptions]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_cset(folder, args.n, names)
        common = {"model": args.model, "device": device_name(device), "n_per_cell": args.n}
        cells = {"cells": 5 * args.corruptions + 1, "images": (5 * args.corruptions + 1) * args.n}
        if args.calibration:
            calibration_cost(folder, names, model, device, args.batch_size, args.rounds, {**common, **cells})
            return
        ours, seconds = robench_path(folder, names, model, device, args.batch_size)
        print(json.dumps({"bench": "eval_official", "impl": "robench", "images_per_s": round(ours, 1),
                          "seconds": round(seconds, 2), **cells, **common}), flush=True)
        if args.model != "none":
            generated, seconds = generated_path(names, model, device, args.n, args.batch_size)
            print(json.dumps({"bench": "eval_generated", "impl": "robench", "images_per_s": round(generated, 1),
                              "seconds": round(seconds, 2), "target_seconds": 10 if args.n * args.corruptions >= 190_000 else None,
                              **cells, **common}), flush=True)
        if device.type == "cuda" and args.model != "none":
            print(json.dumps({"bench": "eval_bf16_forward", "impl": "robench model, bf16 autocast (not used for metrics)",
                              "images_per_s": round(bf16_forward(model, device, 100_000, args.batch_size), 1), **common}),
                  flush=True)
        if not few:  # --reference-corruptions 0: the comparators are skipped
            return
        ref = reference_path(folder, few, model, device, args.batch_size, args.workers)
        print(json.dumps({"bench": "eval_official", "impl": "augmix-reference (PIL+DataLoader)",
                          "images_per_s": round(ref, 1), "workers": args.workers, "cells": 5 * len(few), **common}), flush=True)
        bench = robustbench_path(folder, few, model, device)
        print(json.dumps({"bench": "eval_official", "impl": "robustbench (np.load per severity, fp32, batch 100)",
                          "images_per_s": round(bench, 1), "cells": 5 * len(few), **common}), flush=True)
        print(json.dumps({"bench": "eval_official", "speedup_vs_augmix": round(ours / ref, 2),
                          "speedup_vs_robustbench": round(ours / bench, 2), **common}))


if __name__ == "__main__":
    main()
