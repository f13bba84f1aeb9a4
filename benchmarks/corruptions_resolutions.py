"""robench vs the official Tiny-ImageNet-C / ImageNet-C generators: images/s per corruption at 64 and 224 px.

For each of the 19 corruptions and each size (64 px: Tiny-ImageNet-C's protocol, 224 px:
ImageNet-C's), times robench's `corrupt()` at its default protocol (the storage step included: the
quality-85 JPEG round trip) and the official generator's own function on the same images, severities
1-5, each image then `np.uint8` and saved as the script saves it (PIL JPEG quality 85, optimize=True,
to memory instead of a file). Both run in one process with one thread each. Prints one JSON line per
corruption and size, then one summary line per size.

The official functions are not part of robench: they are read at run time from a checkout of
hendrycks/robustness (the folder `ImageNet-C/create_c`, given by --official-dir or the environment
variable ROBENCH_OFFICIAL_DIR), in a separate Python that has their dependencies (numpy, scipy,
scikit-image, opencv, Wand with ImageMagick; --official-python or ROBENCH_OFFICIAL_PYTHON). This
script runs itself there with --worker (importing neither torch nor robench). Without a checkout,
only robench's figures are printed.

  python benchmarks/corruptions_resolutions.py --official-dir /path/to/robustness/ImageNet-C/create_c \\
      --official-python /path/to/venv/bin/python [--n64 32] [--n224 4] [--slow glass_blur=1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {64: "make_tinyimagenet_c.py", 224: "make_imagenet_c.py"}
GOLDEN_FOLDERS = {64: "tinyimagenet-c", 224: "imagenet-c"}  # under <shared>/golden/
SEVERITIES = range(1, 6)


def make_images(size: int, n: int, shared: Path) -> tuple[np.ndarray, str]:
    """(n, size, size, 3) uint8: the golden inputs tiled when `shared` has them, else random blocks
    (the generators' costs hardly depend on the content)."""
    inputs = shared / "golden" / GOLDEN_FOLDERS[size] / "inputs.npy"
    if inputs.exists():
        base, source = np.load(inputs), "golden inputs, tiled"
    else:
        rng = np.random.default_rng(0)
        coarse = rng.integers(0, 256, (8, size // 8, size // 8, 3)).astype(np.uint8)
        base, source = coarse.repeat(8, 1).repeat(8, 2), "random blocks"
    return np.ascontiguousarray(np.resize(base, (n, *base.shape[1:]))), source


# ---------------------------------------------------------------- the official side (--worker)


def load_official(script: Path) -> dict:
    """The script's distortion functions and helpers: its text from 'Distortion Helpers' to 'End
    Distortions', run in a fresh namespace (the rest of the script loads ImageNet and writes files)."""
    text = script.read_text()
    start, end = text.index("# /////////////// Distortion Helpers"), text.index("# /////////////// End Distortions")
    namespace = {"np": np, "os": os, "__name__": "official_generator"}
    exec(compile(text[start:end], str(script), "exec"), namespace)
    gaussian = namespace["gaussian"]

    def gaussian_013(image, sigma=1, multichannel=None, **options):
        # scikit-image >= 0.20 dropped `multichannel` (0.13's spelling, which the script uses).
        return gaussian(image, sigma, channel_axis=-1 if multichannel else None, **options)

    namespace["gaussian"] = gaussian_013
    return namespace


def worker(args) -> None:
    import warnings

    import cv2
    from PIL import Image

    warnings.simplefilter("ignore")
    cv2.setNumThreads(1)
    os.chdir(args.official_dir)  # frost reads ./frost*.png
    functions = load_official(Path(args.official_dir) / SIZES[args.size])
    images = np.load(args.images)
    np.random.seed(0)
    for name in args.names.split(","):
        n = args.counts.get(name, len(images))
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            for severity in SEVERITIES:
                for img in images[:n]:
                    out = np.uint8(functions[name](Image.fromarray(img), severity))
                    Image.fromarray(out).save(io.BytesIO(), "JPEG", quality=85, optimize=True)
        except Exception as error:  # (e.g. ImageMagick missing for motion_blur and snow): not measured
            print(json.dumps({"name": name, "error": f"{type(error).__name__}: {error}"}), flush=True)
            continue
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(json.dumps({"name": name, "images": n * len(SEVERITIES), "wall_s": wall, "cpu_s": cpu}), flush=True)


def run_official(args, size: int, images: np.ndarray, names: list[str], slow: dict[int, dict[str, int]]) -> dict:
    """{name: (images, wall s, cpu s)} from the worker in the official generator's Python, or {} without one."""
    if not args.official_dir:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npy"
        np.save(path, images)
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   MAGICK_THREAD_LIMIT="1")
        command = [args.official_python, __file__, "--worker", "--size", str(size), "--images", str(path),
                   "--names", ",".join(names), "--official-dir", args.official_dir,
                   "--slow", ",".join(f"{k}={v}" for k, v in slow.get(size, {}).items())]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(json.dumps({"size": size, "official_error": result.stderr.strip().splitlines()[-1:]}), flush=True)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        if "error" in row:
            print(json.dumps({"size": size, "corruption": row["name"], "official_not_measured": row["error"]}))
    return {r["name"]: (r["images"], r["wall_s"], r["cpu_s"]) for r in rows if "error" not in r}


# ---------------------------------------------------------------- robench's side


def run_robench(images: np.ndarray, name: str, repeats: int) -> tuple[int, float, float]:
    """(images, wall s, cpu s) of corrupt() at the size's default protocol, storage step included."""
    import torch

    from robench.corruptions import corrupt

    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    corrupt(x[:2], name, 1, seed=0)  # warm-up (tables, caches)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        for severity in SEVERITIES:
            corrupt(x, name, severity, seed=severity)
    return repeats * len(SEVERITIES) * len(images), time.perf_counter() - wall, time.process_time() - cpu


def parse_slow(spec: str) -> dict[str, int]:
    return {k: int(v) for k, v in (part.split("=") for part in spec.split(",") if part)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-dir", default=os.environ.get("ROBENCH_OFFICIAL_DIR"),
                        help="hendrycks/robustness's ImageNet-C/create_c folder (or ROBENCH_OFFICIAL_DIR)")
    parser.add_argument("--official-python", default=os.environ.get("ROBENCH_OFFICIAL_PYTHON", sys.executable),
                        help="a Python with the official generator's dependencies (or ROBENCH_OFFICIAL_PYTHON)")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                        help="the folder with golden/ (default ../shared beside the clone)")
    parser.add_argument("--n64", type=int, default=32, help="images at 64 px")
    parser.add_argument("--n224", type=int, default=4, help="images at 224 px")
    parser.add_argument("--slow", default="glass_blur=1",
                        help="official image counts at 224 px for slow functions, name=count,...")
    parser.add_argument("--repeats", type=int, default=1, help="robench: passes over the images")
    parser.add_argument("--corruptions", default="", help="comma-separated names (default: all 19)")
    parser.add_argument("--threads", type=int, default=1, help="robench's torch threads")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.counts = parse_slow(args.slow)
        worker(args)
        return

    import torch

    from robench.corruptions import CORRUPTIONS

    torch.set_num_threads(args.threads)
    names = [n for n in args.corruptions.split(",") if n] or list(CORRUPTIONS)
    slow = {224: parse_slow(args.slow)}
    for size, n in ((64, args.n64), (224, args.n224)):
        images, source = make_images(size, n, args.shared)
        official = run_official(args, size, images, names, slow)
        totals = {"robench": 0.0, "official": 0.0}
        for name in names:
            count, wall, cpu = run_robench(images, name, args.repeats)
            row = {"size": size, "corruption": name, "robench_img_s": round(count / wall, 1),
                   "robench_cpu_img_s": round(count / cpu, 1)}
            totals["robench"] += wall / count
            if name in official:
                o_count, o_wall, o_cpu = official[name]
                row.update(official_img_s=round(o_count / o_wall, 2), official_cpu_img_s=round(o_count / o_cpu, 2),
                           speedup=round((count / wall) / (o_count / o_wall), 1), official_images=o_count)
                totals["official"] += o_wall / o_count
            print(json.dumps(row), flush=True)
        summary = {"size": size, "summary": True, "images": n, "source": source, "threads": args.threads,
                   "robench_img_s_over_all": round(len(names) / totals["robench"], 1)}
        if len(official) == len(names):
            summary["official_img_s_over_all"] = round(len(names) / totals["official"], 2)
            summary["speedup"] = round(totals["official"] / totals["robench"], 1)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
