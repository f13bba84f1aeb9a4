"""Cost of augmentation inside a training step: each policy (and mixer, and AugMix+JSD) against no
augmentation, same model and batch. Prints one JSON line per setting:

  aug_ms   time of the augmentation alone (policy + mixer) per step
  step_ms  time of the whole step (augmentation, forward, backward, optimizer)
  aug_share  aug_ms / step_ms  (the issue's target on a GPU: under 10 %)
  step_vs_none  step_ms / step_ms of the no-augmentation step

With --epoch-images N, also the wall time of one training epoch over N device-resident images
(random pixels; the standard and the AugMix+JSD recipes), as `robench train` runs it.

  python benchmarks/train_step.py [--model small-cnn|resnet18|wrn-40-2] [--batch 128] [--device auto]
                                  [--epoch-images 50000]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from robench.config import TrainConfig
from robench.models import build_model
from robench.runtime.device import device_name, resolve_device
from robench.train.loop import Step
from robench.train.optim import make_optimizer

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
    parser.add_argument("--epoch-images", type=int, default=0, help="also time one epoch over this many images")
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
    if args.epoch_images:
        for policy, extra in (("standard", {}), ("augmix", {"jsd": True})):
            seconds = epoch_seconds(model_name, policy, extra, args.epoch_images, args.batch, device)
            print(json.dumps({"bench": "train_epoch", "setting": policy + ("+jsd" if extra else ""), "model": model_name,
                              "batch": args.batch, "images": args.epoch_images, "device": device_name(device),
                              "seconds": round(seconds, 2), "images_per_s": round(args.epoch_images / seconds, 1)}),
                  flush=True)


def epoch_seconds(model_name, policy, extra, n, batch, device) -> float:
    """Wall seconds of one epoch of robench's training loop (augment, forward, loss, backward,
    step, schedule; sums kept on the device) over n random images resident on the device."""
    from robench.data.loader import DeviceLoader
    from robench.train.optim import cosine_schedule

    cfg = TrainConfig(dataset="cifar10", model=model_name, policy=policy, **extra)
    model = build_model(model_name, 10).to(device).train()
    optimizer = make_optimizer("sgd", model.parameters(), 0.1, 5e-4)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    loader = DeviceLoader(images, torch.randint(0, 10, (n,)), batch, device, seed=0)
    scheduler = cosine_schedule(optimizer, len(loader), 0.0)
    step = Step(cfg, model, 10, device)
    loss_sum = torch.zeros((), device=device)
    for index, (x, y) in enumerate(loader):
        if index == 1:  # the first step (kernel selection, caches) is warm-up
            sync(device)
            start = time.perf_counter()
        loss, _ = step(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach()
    float(loss_sum)
    return (time.perf_counter() - start) * len(loader) / max(1, len(loader) - 1)


if __name__ == "__main__":
    main()
