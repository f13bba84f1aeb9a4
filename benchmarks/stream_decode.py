"""Decode + preprocess throughput of robench's streamed image source against torchvision's
ImageFolder + DataLoader (same workers, same JPEG tree), its peak host memory, and the pixel
difference of the tensor path from the PIL path on photographs. One JSON object per line.

    python benchmarks/stream_decode.py --images 2000 --workers 2            # throughput
    python benchmarks/stream_decode.py --memory 20000                       # peak RSS, fresh process
    python benchmarks/stream_decode.py --compare-pil DIR [DIR ...]          # tensor vs PIL path

The tree is generated once in --tree (smooth colour fields with noise, ~500x375, JPEG quality 90,
like ImageNet's validation JPEGs in size); --memory streams that many images (the tree's files
repeated) through StreamedSplit.chunks and reports ru_maxrss, so a flat figure across counts shows
the bound. --compare-pil takes folders of real photographs (JPEG or PNG; each is cropped at several
sizes and saved as JPEG quality 90 so that both paths decode the same JPEG).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robench.data.stream import StreamedSplit, decode_files  # noqa: E402


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def make_tree(root: Path, n: int, classes: int = 10) -> list[Path]:
    from PIL import Image

    files = []
    for k in range(n):
        path = root / f"c{k % classes:02d}" / f"{k:06d}.JPEG"
        files.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(k)
        w, h = (500, 375) if k % 4 else (375, 500)
        y, x = np.mgrid[0:h, 0:w] / 500
        planes = [np.sin(rng.uniform(2, 12) * x + rng.uniform(2, 12) * y + rng.uniform(0, 6)) for _ in range(3)]
        image = np.stack(planes, -1) * 90 + 128 + rng.normal(0, 12, (h, w, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return files


def split_of(files: list[Path], **options) -> StreamedSplit:
    return StreamedSplit(files, [f.name for f in files], torch.zeros(len(files), dtype=torch.int64), ["x"],
                         name="bench", **options)


def ours(files, workers: int, decode: str) -> float:
    split = split_of(files, workers=workers, decode=decode)
    start = time.perf_counter()
    count = sum(images.shape[0] for _, images in split.chunks())
    return count / (time.perf_counter() - start)


def imagefolder(root: Path, workers: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.ImageFolder(str(root), transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(224), transforms.PILToTensor()]))
    loader = DataLoader(dataset, batch_size=100, num_workers=workers)
    start = time.perf_counter()
    count = sum(images.shape[0] for images, _ in loader)
    return count / (time.perf_counter() - start)


def compare_pil(folders: list[str], out: Path) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for folder in folders:
        for source in sorted(Path(folder).iterdir()):
            if source.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            image = Image.open(source).convert("RGB")
            w, h = image.size
            if min(w, h) < 260:
                continue
            for k, scale in enumerate((1.0, 0.8, 0.6)):  # several sizes -> several resize ratios
                cw, ch = max(257, int(w * scale)), max(257, int(h * scale))
                crop = image.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
                path = out / f"{source.stem}_{k}.JPEG"
                crop.save(path, "JPEG", quality=90)
                files.append(path)
    pil = decode_files(files, "imagenet", "pil", workers=2).int()
    tensor = decode_files(files, "imagenet", "tensor", workers=2).int()
    diff = (tensor - pil).abs()
    per_image = diff.flatten(1).float()
    emit(what="tensor vs PIL path, Resize(256)+CenterCrop(224)", images=len(files), max_abs=int(diff.max()),
         mean_abs=round(float(diff.float().mean()), 4), share_pixels_differing=round(float((diff > 0).float().mean()), 4),
         share_over_1=round(float((diff > 1).float().mean()), 5), worst_image_mean_abs=round(float(per_image.mean(1).max()), 4),
         sources=[str(f) for f in folders])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tree", default="/tmp/robench-stream-bench")
    parser.add_argument("--memory", type=int, default=None, help="stream this many images and report peak RSS")
    parser.add_argument("--compare-pil", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the decode threads are the parallelism, as DataLoader's workers are
    emit(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(), torch=torch.__version__,
         date=time.strftime("%Y-%m-%d"))
    if args.compare_pil is not None:
        compare_pil(args.compare_pil, Path(args.tree) / "photos")
        return
    files = make_tree(Path(args.tree) / "tree", args.images)
    if args.memory:
        repeated = [files[k % len(files)] for k in range(args.memory)]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        count = sum(images.shape[0] for _, images in split_of(repeated, workers=args.workers).chunks())
        emit(what="peak RSS streaming", images=count, peak_rss_mib=round(resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024, 1), rss_before_mib=round(before / 1024, 1),
            images_per_s=round(count / (time.perf_counter() - start), 1), workers=args.workers)
        return
    for name, run in (("robench StreamedSplit, tensor", lambda: ours(files, args.workers, "tensor")),
                      ("robench StreamedSplit, pil", lambda: ours(files, args.workers, "pil")),
                      ("torchvision ImageFolder + DataLoader", lambda: imagefolder(Path(args.tree) / "tree",
                                                                                    args.workers))):
        emit(what=name, images=len(files), workers=args.workers, images_per_s=round(run(), 1))


if __name__ == "__main__":
    main()
