"""Cost of augmentation inside a training step: each policy (and mixer, and AugMix+JSD) against no
augmentation, same model and batch. Prints one JSON line per setting:

  aug_ms   time of the augmentation alone (policy + mixer) per step
  step_ms  time of the whole step (augmentation, forward, backward, optimizer)
  aug_share  aug_ms / step_ms  (the issue's target on a GPU: under 10 %)
  step_vs_none  step_ms / step_ms of the no-augmentation step

  python benchmarks/train_step.py [--model small-cnn|resnet18|wrn-40-2] [--batch 128] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from robench.config import TrainConfig
from robench.models import build_model
from robench.optim import make_optimizer
from robench.runs import device_name, resolve_device
from robench.train import Step

SETTINGS = [
    ("none", {}), ("standard", {}), ("cutout", {}), ("randaugment", {}), ("autoaugment", {}),
    ("trivialaugment", {}), ("augmix", {}), ("augmix", {"jsd": True}),
    ("standard", {"mix": "mixup"}), ("standard", {"mix": "cutmix"}), ("standard", {"mix": "ricap"}),
]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int) -> float:
    """Median milliseconds of fn() over `repeats` runs, after five warm-up runs."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: small-cnn on CPU, resnet18 on CUDA")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model_name = args.model or ("resnet18" if device.type == "cuda" else "small-cnn")
    images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    baseline = None
    # The first setting is run twice and its first, cold run (library start-up) is not reported.
    for index, (policy, extra) in enumerate([SETTINGS[0]] + SETTINGS):
        cfg = TrainConfig(dataset="cifar10", model=model_name, policy=policy, **extra)
        model = build_model(model_name, 10).to(device).train()
        optimizer = make_optimizer("sgd", model.parameters(), 0.01, 5e-4)
        step = Step(cfg, model, 10, device)

        def augment_only():
            step.inputs(images, labels)

        def full_step():
            loss, _ = step(images, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        aug_ms, step_ms = timed(augment_only, device, args.repeats), timed(full_step, device, args.repeats)
        if index == 0:
            continue
        baseline = baseline or step_ms
        label = policy + (f"+{extra['mix']}" if "mix" in extra else "") + ("+jsd" if extra.get("jsd") else "")
        print(json.dumps({"bench": "train_step", "setting": label, "model": model_name, "batch": args.batch,
                          "device": device_name(device), "aug_ms": round(aug_ms, 3), "step_ms": round(step_ms, 3),
                          "aug_share": round(aug_ms / step_ms, 3), "step_vs_none": round(step_ms / baseline, 2)}),
              flush=True)


if __name__ == "__main__":
    main()
