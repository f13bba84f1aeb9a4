"""The benchmark family on one device, for `make gpu-check`: what a GPU user would run, timed with a
device sync at each end, one JSON object per line, each with its target where the issues set one.

    python benchmarks/family_device.py --device cuda            # the gpu-check sizes
    python benchmarks/family_device.py --device cpu --scale 0.01  # a quick smoke run here

  imagenet-c  19 x 5 corruptions at 224 px under protocol imagenet-c, storage step included, on
              --n224 images; extrapolated to 19 x 5 x 5,000 (target: under 120 s on one H100,
              decode not counted)
  tiny        the same at 64 px (tiny-imagenet-c) on --n64 images, extrapolated to 10,000
  c-bar       CIFAR-10-C-bar's 10 x 5 on --n32 images, extrapolated to 10,000
  p           CIFAR-10-P's 10 perturbations on --sequences sequences, extrapolated to 10,000
  stream      a JPEG tree (~500x375, written once to --tree) decoded + Resize(256) + CenterCrop(224)
              by StreamedSplit on the device and fed through a ResNet-50 (random weights, fp32
              logits): images/s, extrapolated to ImageNet's clean 50,000 + 75 cells x 5,000 of the
              RobustBench subset = 425,000 images (target: under 600 s on one H100)

Extrapolated figures say so (`extrapolated_from`); measured ones do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robench.corruptions import CORRUPTIONS  # noqa: E402
from robench.corruptions.benchmarks import CBAR, PERTURBATIONS  # noqa: E402
from robench.corruptions.cbar import corrupt_bar_chunks  # noqa: E402
from robench.corruptions.perturbations import generated_sequences  # noqa: E402
from robench.corruptions.protocol import CHUNK, SEVERITIES  # noqa: E402
from robench.corruptions.registry import corrupt_chunks  # noqa: E402


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images(n: int, size: int, device: torch.device) -> torch.Tensor:
    """Smooth random images (corruptions cost the same on any content)."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    return (torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1) * 255).to(
        torch.uint8).to(device)


def timed(device: torch.device, work) -> float:
    sync(device)
    start = time.perf_counter()
    work()
    sync(device)
    return time.perf_counter() - start


def corruption_grid(name: str, x: torch.Tensor, protocol: str, target_n: int, target_s: float | None,
                    device: torch.device) -> None:
    n = x.shape[0]
    seeds = list(range(-(-n // CHUNK)))
    corrupt_chunks(x[:8], CORRUPTIONS[0], 1, [0], CHUNK, protocol=protocol)  # warm-up (kernels, tables)
    total = 0.0
    for corruption in CORRUPTIONS:
        seconds = timed(device, lambda: [corrupt_chunks(x, corruption, s, seeds, CHUNK, protocol=protocol)
                                         for s in SEVERITIES])
        total += seconds
        emit(bench=name, corruption=corruption, images=n * len(SEVERITIES), seconds=round(seconds, 3),
             images_per_s=round(n * len(SEVERITIES) / seconds, 1))
    emit(bench=name, corruption="total", protocol=protocol, seconds_measured=round(total, 2),
         **{f"seconds_for_19x5x{target_n}": round(total * target_n / n, 1)}, extrapolated_from=n,
         target_seconds=target_s)


def cbar_grid(x: torch.Tensor, device: torch.device) -> None:
    n = x.shape[0]
    seeds = list(range(-(-n // CHUNK)))
    total = 0.0
    for corruption in CBAR:
        seconds = timed(device, lambda: [corrupt_bar_chunks(x, corruption, s, seeds, CHUNK) for s in SEVERITIES])
        total += seconds
        emit(bench="c-bar", corruption=corruption, images=n * len(SEVERITIES), seconds=round(seconds, 3))
    emit(bench="c-bar", corruption="total", seconds_measured=round(total, 2),
         seconds_for_10x5x10000=round(total * 10_000 / n, 1), extrapolated_from=n)


def p_sequences(x: torch.Tensor, device: torch.device) -> None:
    n = x.shape[0]
    total = 0.0
    for name in PERTURBATIONS:
        seconds = timed(device, lambda: [None for _ in generated_sequences(x, name, 0, batch=n)])
        total += seconds
        emit(bench="p", perturbation=name, sequences=n, seconds=round(seconds, 3))
    emit(bench="p", perturbation="total", seconds_measured=round(total, 2),
         seconds_for_10x10000=round(total * 10_000 / n, 1), extrapolated_from=n)


def stream_eval(n: int, tree: Path, device: torch.device) -> None:
    import torchvision

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from stream_decode import make_tree, split_of

    files = make_tree(tree, n)
    split = split_of(files, device=device if device.type == "cuda" else None)
    model = torchvision.models.resnet50().to(device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255

    def run():
        with torch.no_grad():
            for _, chunk in split.chunks(0, n):
                x = chunk.to(device, non_blocking=True)
                for batch in x.split(250):
                    model((batch.float() - mean) / std).float().argmax(1)

    next(split.chunks(0, min(n, 8)))  # warm-up: decoder and cuDNN
    seconds = timed(device, run)
    rate = n / seconds
    emit(bench="stream", images=n, seconds=round(seconds, 2), images_per_s=round(rate, 1),
         seconds_for_425000=round(425_000 / rate, 1), extrapolated_from=n, target_seconds=600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count (smoke runs)")
    parser.add_argument("--n224", type=int, default=1000)
    parser.add_argument("--n64", type=int, default=2000)
    parser.add_argument("--n32", type=int, default=2000)
    parser.add_argument("--sequences", type=int, default=1000)
    parser.add_argument("--stream", type=int, default=2000)
    parser.add_argument("--tree", type=Path, default=Path("/tmp/robench-stream-bench"))
    parser.add_argument("--only", default="imagenet-c,tiny,c-bar,p,stream")
    args = parser.parse_args()
    device = torch.device(args.device)
    count = lambda n: max(1, int(n * args.scale))  # noqa: E731
    only = set(args.only.split(","))
    emit(bench="device", device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
         torch=torch.__version__)
    if "imagenet-c" in only:
        corruption_grid("imagenet-c", images(count(args.n224), 224, device), "imagenet-c", 5000, 120, device)
    if "tiny" in only:
        corruption_grid("tiny-imagenet-c", images(count(args.n64), 64, device), "tiny-imagenet-c", 10000, None,
                        device)
    if "c-bar" in only:
        cbar_grid(images(count(args.n32), 32, device), device)
    if "p" in only:
        p_sequences(images(count(args.sequences), 32, device), device)
    if "stream" in only:
        stream_eval(count(args.stream), args.tree, device)


if __name__ == "__main__":
    main()
