"""Corruption engine throughput (images/s of `corrupt()`) per corruption and severity.

Times `robench.corruptions.corrupt` on a batch of N 32x32 images (the golden inputs tiled when
../shared is beside the clone, else random images) at every severity, on CPU with
--threads threads and, when available, on CUDA (warm-up first, synchronised timing). Prints one
JSON line per corruption and device, then a total line per device with the official generator's
speed for comparison.

  python benchmarks/corruptions.py [--n 10000] [--device all|cpu|cuda] [--corruptions a,b] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from robench.corruptions import CORRUPTIONS, corrupt, get_corruption
from robench.errors import RobenchError

# The official generator (one CPU process, PIL/OpenCV/scikit-image per image) needs about
# 17 minutes for all 19 corruptions x 5 severities x 10,000 CIFAR images, i.e. ~930 images/s
# averaged over the corruptions. This figure is an outside estimate of the generator's speed; it
# is not measured by this script.
REFERENCE_SECONDS = 17 * 60
REFERENCE_IMAGES = 19 * 5 * 10_000
GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "cifar10c" / "inputs.npy"


def make_images(n: int) -> tuple[torch.Tensor, str]:
    if GOLDEN.exists():
        base = torch.from_numpy(np.load(GOLDEN)).permute(0, 3, 1, 2)
        source = "golden inputs, tiled"
    else:
        base = torch.randint(0, 256, (128, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        source = "random"
    reps = -(-n // base.shape[0])
    return base.repeat(reps, 1, 1, 1)[:n].contiguous(), source


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_corruption(images: torch.Tensor, name: str) -> tuple[dict[int, float], float]:
    """Wall seconds per severity for one corruption on the whole batch (after a small warm-up),
    and the process CPU seconds of all five (a figure that other load on the machine inflates
    less than wall time)."""
    corrupt(images[:64], name, 1, seed=0)
    sync(images.device)
    seconds = {}
    cpu_start = time.process_time()
    for severity in range(1, 6):
        start = time.perf_counter()
        corrupt(images, name, severity, seed=severity)
        sync(images.device)
        seconds[severity] = time.perf_counter() - start
    return seconds, time.process_time() - cpu_start


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images per corruption and severity")
    parser.add_argument("--device", default="all", help="cpu, cuda, or all (cpu, plus cuda when available)")
    parser.add_argument("--corruptions", default=",".join(CORRUPTIONS), help="comma-separated names")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.corruptions.split(",") if n.strip()]
    try:
        for name in names:
            get_corruption(name)
    except RobenchError as e:
        raise SystemExit(f"error: {e}") from None
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]

    cpu_images, source = make_images(args.n)
    for device in map(torch.device, devices):
        images = cpu_images.to(device)
        total = total_cpu = 0.0
        for name in names:
            seconds, cpu = time_corruption(images, name)
            total += sum(seconds.values())
            total_cpu += cpu
            print(json.dumps({
                "bench": "corruptions", "corruption": name, "device": device_label(device), "n": args.n,
                "images_per_s": {s: round(args.n / t) for s, t in seconds.items()},
                "images_per_s_all_severities": round(5 * args.n / sum(seconds.values())),
                "cpu_seconds": round(cpu, 2),
            }), flush=True)
        done = len(names) * 5 * args.n
        reference = REFERENCE_SECONDS * done / REFERENCE_IMAGES  # the generator's time for the same work
        print(json.dumps({
            "bench": "corruptions", "corruption": "total", "device": device_label(device), "n": args.n,
            "corruptions": len(names), "images": done, "input": source, "seconds": round(total, 2),
            "images_per_s": round(done / total), "cpu_seconds": round(total_cpu, 1),
            "seconds_for_19x5x10000": round(total * REFERENCE_IMAGES / done, 1),
            "reference_generator_seconds_for_19x5x10000": REFERENCE_SECONDS,
            "reference_images_per_s": round(REFERENCE_IMAGES / REFERENCE_SECONDS),
            "speedup_vs_reference": round(reference / total, 1),
        }), flush=True)


if __name__ == "__main__":
    main()
