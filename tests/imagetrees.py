"""Small trees of real JPEG files (written by PIL) in the layouts robench streams: ImageNet's
foldered and flat validation sets, Tiny-ImageNet's, a released ImageNet-C tree, any class folder.

Images are smooth random gradients plus a little noise (JPEG-friendly, every one different), of
assorted sizes unless a size is given; `wnids(k)` are k made-up WordNet-style ids that sort in a
different order from the one they are listed in (as Tiny-ImageNet's wnids.txt does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def wnids(k: int) -> list[str]:
    return [f"n{(7919 * (i + 3)) % 100_000_000:08d}" for i in range(k)][::-1]


def picture(seed: int, width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    planes = [np.sin(rng.uniform(2, 9) * x + rng.uniform(2, 9) * y + rng.uniform(0, 6)) for _ in range(3)]
    image = np.stack(planes, -1) * 100 + 128 + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def size_of(seed: int, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        return size
    rng = np.random.default_rng(seed + 10_000)
    return int(rng.integers(240, 420)), int(rng.integers(240, 420))


def write_jpeg(path: Path, seed: int, size: tuple[int, int] | None = None, quality: int = 90, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed, *size_of(seed, size)).convert(mode).save(path, "JPEG", quality=quality)
    return path


def val_name(k: int) -> str:
    return f"ILSVRC2012_val_{k:08d}.JPEG"


def imagenet_labels(n: int, classes: list[str]) -> dict[int, str]:
    """{validation id (1-based): wnid}, classes interleaved so each is used."""
    return {k: classes[(k * 7) % len(classes)] for k in range(1, n + 1)}


def imagenet_foldered(root: Path, labels: dict[int, str], size=None) -> Path:
    for k, wnid in labels.items():
        write_jpeg(root / "val" / wnid / val_name(k), k, size)
    return root


def imagenet_flat(root: Path, labels: dict[int, str], size=None, label_file: str = "val_labels.txt") -> Path:
    for k in labels:
        write_jpeg(root / "val" / val_name(k), k, size)
    if label_file == "val_labels.txt":
        (root / "val_labels.txt").write_text("".join(f"{val_name(k)} {w}\n" for k, w in labels.items()))
    elif label_file == "LOC_val_solution.csv":
        (root / label_file).write_text("ImageId,PredictionString\n" + "".join(
            f"{val_name(k)[:-5]},{w} 1 2 30 40 {w} 5 6 70 80\n" for k, w in labels.items()))
    return root


def tiny_imagenet(root: Path, classes: list[str], n: int) -> tuple[Path, list[str]]:
    """tiny-imagenet-200 layout: wnids.txt (unsorted), val/images/val_<k>.JPEG (64 px, a few grey),
    val/val_annotations.txt. Returns the root and each image's wnid in annotation order."""
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(classes) + "\n")
    lines, truth = [], []
    for k in range(n):
        wnid = classes[(k * 3) % len(classes)]
        write_jpeg(root / "val" / "images" / f"val_{k}.JPEG", k, (64, 64), mode="L" if k % 5 == 4 else "RGB")
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
        truth.append(wnid)
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root, truth


def released_c(root: Path, ids: list[str], corruptions: list[str], severities=(1, 2, 3, 4, 5),
               size=(224, 224)) -> Path:
    """`<root>/<corruption>/<severity>/<wnid>/<file>` for each id `<wnid>/<file>` (images differ per cell)."""
    for c, corruption in enumerate(corruptions):
        for severity in severities:
            for k, id_ in enumerate(ids):
                write_jpeg(root / corruption / str(severity) / id_, 1000 * (c * 10 + severity) + k, size, quality=85)
    return root
