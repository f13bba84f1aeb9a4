"""Augmentation throughput: robench's batched policies vs torchvision v2 applied per image.

For each policy, times `make_policy(name)(batch)` on a batch of --batch images (--size px, the
golden CIFAR inputs tiled when ../shared is beside the clone, else random images) with --threads
CPU threads, and the torchvision v2 equivalent called image by image in a Python loop, as a
DataLoader worker would (RandomCrop(padding=4) + RandomHorizontalFlip + the policy, on uint8
tensors). Both sides include the crop+flip and are timed in alternation; images/s are reported
from wall time and from this thread's CPU time (steadier on a shared machine). On CUDA (when
present) the batched policies are timed too, synchronised, against torchvision v2 called on the
whole batch on the GPU (one set of random parameters per batch, what v2 offers on a batch). Prints
one JSON line per policy and device.

torchvision.transforms.v2.AugMix is the per-image comparator for augmix although it differs from
the official AugMix that robench reproduces: it shares one op chain per call, includes the colour
ops by default and returns uint8.

  python benchmarks/augment.py [--batch 512] [--size 32] [--threads 1] [--repeats 7] [--device all|cpu|cuda]
                               [--cuda-batches 512,4096] [--policies randaugment,augmix]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from robench.augment import POLICIES, make_policy

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "cifar10c" / "inputs.npy"
TARGETS = {"augmix": 20.0, "randaugment": 10.0, "autoaugment": 10.0, "trivialaugment": 10.0}
# What the trainer asks for: AugMix's float mix as it is (a uint8 output would add a rounding pass).
OUTPUT = {"augmix": torch.float32}
NOTES = {"augmix": "torchvision AugMix differs (one shared chain per call, all_ops=True, uint8 output); "
                   "robench follows the official code (per-image chains, 9 ops, float output)"}


def make_images(n: int, size: int) -> tuple[torch.Tensor, str]:
    if GOLDEN.exists() and size == 32:
        base = torch.from_numpy(np.load(GOLDEN)).permute(0, 3, 1, 2)
        source = "golden inputs, tiled"
    else:
        base = torch.randint(0, 256, (128, 3, size, size), generator=torch.Generator().manual_seed(0),
                             dtype=torch.uint8)
        source = "random"
    reps = -(-n // base.shape[0])
    return base.repeat(reps, 1, 1, 1)[:n].contiguous(), source


def torchvision_pipeline(name: str, size: int):
    """The per-image torchvision v2 pipeline for a policy, or None when there is no equivalent."""
    from torchvision.transforms import v2

    policies = {
        "standard": [],
        "randaugment": [v2.RandAugment()],
        "autoaugment": [v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)],
        "trivialaugment": [v2.TrivialAugmentWide()],
        "augmix": [v2.AugMix()],
    }
    if name not in policies:
        return None
    return v2.Compose([v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip(), *policies[name]])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) of one call; synchronised on CUDA."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.thread_time() - cpu


def rate(n: int, seconds: list[float]) -> int:
    return round(n / statistics.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--cuda-batches", default="512,4096", help="batch sizes timed on CUDA")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="all", choices=["all", "cpu", "cuda"])
    parser.add_argument("--policies", default=",".join(p for p in POLICIES if p != "none"),
                        help="comma-separated policy names")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.policies.split(",")

    if args.device in ("all", "cpu"):
        # Ours and torchvision's are timed in alternation, so that a busy machine slows both alike;
        # the CPU-time figures (this thread only) are the less noisy ones on a shared machine.
        images, source = make_images(args.batch, args.size)
        per_image = list(images.unbind(0))
        for name in names:
            policy, gen = make_policy(name), torch.Generator().manual_seed(0)
            reference = torchvision_pipeline(name, args.size)
            torch.manual_seed(0)
            for _ in range(2):  # warm-up
                policy(images, generator=gen, dtype=OUTPUT.get(name))
                if reference is not None:
                    [reference(img) for img in per_image]
            ours, theirs = [], []
            for _ in range(args.repeats):
                ours.append(timed(lambda: policy(images, generator=gen, dtype=OUTPUT.get(name)), torch.device("cpu")))
                if reference is not None:
                    theirs.append(timed(lambda: [reference(img) for img in per_image], torch.device("cpu")))
            row = {
                "bench": "augment", "policy": name, "device": "cpu", "threads": args.threads,
                "batch": args.batch, "size": args.size, "images": source,
                "batched_images_per_s": rate(args.batch, [w for w, _ in ours]),
                "batched_cpu_images_per_s": rate(args.batch, [c for _, c in ours]),
            }
            if theirs:
                row["torchvision_per_image_images_per_s"] = rate(args.batch, [w for w, _ in theirs])
                row["torchvision_per_image_cpu_images_per_s"] = rate(args.batch, [c for _, c in theirs])
                row["speedup"] = round(row["batched_images_per_s"] / row["torchvision_per_image_images_per_s"], 1)
                row["speedup_cpu_time"] = round(row["batched_cpu_images_per_s"]
                                                / row["torchvision_per_image_cpu_images_per_s"], 1)
                if name in TARGETS:
                    row["target_speedup"] = TARGETS[name]
                    row["meets_target"] = row["speedup"] >= TARGETS[name]
            if name in NOTES:
                row["note"] = NOTES[name]
            print(json.dumps(row), flush=True)

    if args.device in ("all", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda")
        for batch in [int(b) for b in args.cuda_batches.split(",")]:
            images = make_images(batch, args.size)[0].to(device)
            for name in names:
                policy, gen = make_policy(name), torch.Generator(device).manual_seed(0)
                for _ in range(3):  # warm-up (kernels, caches)
                    policy(images, generator=gen, dtype=OUTPUT.get(name))
                times = [timed(lambda: policy(images, generator=gen, dtype=OUTPUT.get(name)), device)[0] for _ in range(args.repeats)]
                row = {"bench": "augment", "policy": name, "device": "cuda",
                       "device_name": torch.cuda.get_device_name(device), "batch": batch, "size": args.size,
                       "batched_images_per_s": rate(batch, times)}
                # torchvision v2 on the GPU, called on the whole batch: one set of random parameters
                # for all its images (not per image), which is what it offers on a batch.
                reference = torchvision_pipeline(name, args.size)
                if reference is not None:
                    for _ in range(3):
                        reference(images)
                    theirs = [timed(lambda: reference(images), device)[0] for _ in range(args.repeats)]
                    row["torchvision_v2_per_batch_images_per_s"] = rate(batch, theirs)
                if name == "augmix":
                    row["target_images_per_s"] = 1_000_000
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
