"""The markdown summary of a `make gpu-check` folder: each figure next to its target.

  python benchmarks/gpu_summary.py OUT_DIR > OUT_DIR/summary.md
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def rows(folder: Path, name: str) -> list[dict]:
    path = folder / f"{name}.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # warnings and other text
    return out


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def summary(folder: Path) -> str:
    lines = ["# gpu-check", ""]
    device = folder / "device.txt"
    lines += [device.read_text().strip() if device.exists() else "(device unknown)", ""]
    lines += ["| step | exit | seconds |", "| --- | ---: | ---: |"]
    steps = rows(folder, "steps")
    lines += [f"| {s['step']} | {s['exit']} | {s['seconds']} |" for s in steps]
    lines += [f"| total | | {sum(s['seconds'] for s in steps)} (target: under 570) |", ""]

    xml = folder / "tests.xml"
    if xml.exists():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        lines += [f"CUDA tests: {counts['tests']} run, {counts['failures']} failed, {counts['errors']} errors, "
                  f"{counts['skipped']} skipped (tests.txt has the details)", ""]

    lines += ["| figure | measured | target | |", "| --- | ---: | ---: | --- |"]
    total = next((r for r in rows(folder, "corruptions") if r.get("corruption") == "total"), None)
    if total:
        seconds = total["seconds_for_19x5x10000"]
        lines.append(f"| corruptions, 19 x 5 x 10,000 images | {seconds} s | under 5 s | {verdict(seconds < 5)} |")
    for r in rows(folder, "eval"):
        if r.get("bench") == "eval_generated":
            lines.append(f"| eval, ResNet-18, clean + 19 x 5 generated ({r['images']:,} images, fp32 logits) | "
                         f"{r['seconds']} s | under 10 s | {verdict(r['seconds'] < 10)} |")
        elif r.get("bench") == "eval_official" and r.get("impl") == "robench":
            lines.append(f"| eval, ResNet-18, clean + 19 x 5 from official-layout files | {r['seconds']} s | under 10 s | "
                         f"{verdict(r['seconds'] < 10)} |")
        elif r.get("bench") == "eval_official" and "impl" in r:
            lines.append(f"| comparator: {r['impl']} | {r['images_per_s']:,.0f} img/s | - | |")
        elif r.get("bench") == "eval_bf16_forward":
            lines.append(f"| ResNet-18 forward alone under bf16 autocast (not used for metrics) | "
                         f"{r['images_per_s']:,.0f} img/s | - | |")
    for r in rows(folder, "augment"):
        if r.get("device") != "cuda":
            continue
        target = r.get("target_images_per_s")
        tv = r.get("torchvision_v2_per_batch_images_per_s")
        lines.append(f"| augment {r['policy']}, batch {r['batch']} | {r['batched_images_per_s']:,} img/s"
                     f"{f' (torchvision v2 per batch: {tv:,})' if tv else ''} | "
                     f"{f'over {target:,} img/s' if target else '-'} | "
                     f"{verdict(r['batched_images_per_s'] > target) if target else ''} |")
    for r in rows(folder, "train_step"):
        if r.get("bench") == "train_step":
            lines.append(f"| augmentation's share of a ResNet-18 step, {r['setting']} | {100 * r['aug_share']:.1f} % | "
                         f"under 10 % | {verdict(r['aug_share'] < 0.10)} |")
        elif r.get("bench") == "train_epoch":
            lines.append(f"| ResNet-18 epoch ({r['images']:,} images), {r['setting']} | {r['seconds']} s | - | |")
    for r in rows(folder, "family"):
        if r.get("corruption") == "total" and r.get("bench") == "imagenet-c":
            seconds = r["seconds_for_19x5x5000"]
            lines.append(f"| ImageNet-C, 19 x 5 x 5,000 at 224 px, storage step included (from {r['extrapolated_from']}) "
                         f"| {seconds} s | under 120 s | {verdict(seconds < 120)} |")
        elif r.get("corruption") == "total" and r.get("bench") == "tiny-imagenet-c":
            lines.append(f"| Tiny-ImageNet-C, 19 x 5 x 10,000 at 64 px (from {r['extrapolated_from']}) | "
                         f"{r['seconds_for_19x5x10000']} s | - | |")
        elif r.get("corruption") == "total" and r.get("bench") == "c-bar":
            lines.append(f"| CIFAR-10-C-bar, 10 x 5 x 10,000 (from {r['extrapolated_from']}) | "
                         f"{r['seconds_for_10x5x10000']} s | - | |")
        elif r.get("perturbation") == "total":
            lines.append(f"| CIFAR-10-P, 10 x 10,000 sequences (from {r['extrapolated_from']}) | "
                         f"{r['seconds_for_10x10000']} s | - | |")
        elif r.get("bench") == "stream":
            seconds = r["seconds_for_425000"]
            lines.append(f"| ResNet-50 on JPEGs: clean 50k + 75 x 5k (from {r['extrapolated_from']}, "
                         f"{r['images_per_s']:,.0f} img/s) | {seconds} s | under 600 s | {verdict(seconds < 600)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])), end="")
