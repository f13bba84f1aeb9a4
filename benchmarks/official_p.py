"""Run the official CIFAR-10-P generator's code on given images (a helper of benchmarks/perturbations.py).

The official generator (hendrycks/robustness, ImageNet-P/create_p/make_cifar_p.py) is one loop over
the CIFAR-10 test set whose perturbations are blocks switched on by un-commenting them. This
helper reads that file from a local snapshot of the repository at run time (nothing of it is
kept in robench), runs its imports and helper functions, and for each perturbation executes the
block's own lines, un-commented, on one image at a time. For the noises only the first difficulty
block is kept (the one that made `<noise>.npy`).

It needs the generator's dependencies (NumPy, SciPy, scikit-image, OpenCV, Wand + ImageMagick 6,
torch and torchvision 0.2.x for its `affine`), so it runs in a separate environment:

  <venv>/bin/python benchmarks/official_p.py --script <snapshot>/ImageNet-P/create_p/make_cifar_p.py \
      --images in.npy --out out_dir [--perturbations a,b] [--time]

Writes <out>/<perturbation>.npy (uint8 (N, T, 32, 32, 3)) and prints one JSON line per
perturbation with the seconds it took. Shims, each named where applied: `np.fromstring` (removed
from recent NumPy for binary data) is given as `np.frombuffer`; `PIL.PILLOW_VERSION` (which
torchvision 0.2 imports, dropped in Pillow 7) is set to Pillow's version.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

BLOCK_NAMES = {  # robench's names -> the generator's block titles
    "gaussian_noise": "Gaussian Noise", "shot_noise": "Shot Noise", "motion_blur": "Motion Blur",
    "zoom_blur": "Zoom Blur", "spatter": "Spatter", "brightness": "Brightness", "translate": "Translate",
    "rotate": "Rotate", "tilt": "Tilt", "scale": "Scale",
}


def load_generator(script: Path) -> tuple[dict, dict[str, str]]:
    """(namespace with the script's imports and helpers, {perturbation: block source})."""
    text = script.read_text()
    head = text[: text.index("test_data = ")]  # imports, Wand motion blur, clipped_zoom, brightness
    import PIL

    if not hasattr(PIL, "PILLOW_VERSION"):  # shim: torchvision 0.2 imports it, Pillow >= 7 dropped it
        PIL.PILLOW_VERSION = PIL.__version__
    namespace: dict = {"__name__": "make_cifar_p"}
    exec(compile(head, str(script), "exec"), namespace)
    if not hasattr(np, "fromstring") or _fromstring_broken():
        namespace["np"] = _numpy_with_fromstring()
    blocks = {}
    for name, title in BLOCK_NAMES.items():
        match = re.search(rf"# /+ {title} Code /+\n(.*?)# /+ End {title} Code /+", text, re.S)
        lines = [re.sub(r"^(\s*)# ?", r"\1", line) for line in match.group(1).splitlines()]
        body = textwrap.dedent("\n".join(lines))
        if "noise" in name:  # keep the first difficulty: up to the end of the first frame loop
            paragraphs = re.split(r"\n\s*\n", body.strip())
            first_loop = next(i for i, p in enumerate(paragraphs) if p.lstrip().startswith("for "))
            body = "\n\n".join(paragraphs[: first_loop + 1])
        blocks[name] = body
    return namespace, blocks


def _fromstring_broken() -> bool:
    try:
        np.fromstring(b"\x00", np.uint8)
        return False
    except Exception:
        return True


def _numpy_with_fromstring():
    """NumPy as the generator knew it: np.fromstring(bytes, dtype) reads binary data (shim)."""
    import types

    shim = types.ModuleType("numpy_shim")
    shim.__dict__.update(np.__dict__)
    shim.fromstring = lambda data, dtype=float: np.frombuffer(data, dtype).copy()
    return shim


def run(namespace: dict, block: str, img: np.ndarray) -> np.ndarray:
    scope = dict(namespace)
    scope.update(img=img, seq=[])
    exec(block, scope)
    return np.array(scope["seq"]).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--perturbations", default=",".join(BLOCK_NAMES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    namespace, blocks = load_generator(args.script)
    images = np.load(args.images)
    import torch

    for name in args.perturbations.split(","):
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        try:
            out = np.stack([run(namespace, blocks[name], img) for img in images])
        except Exception as e:  # report and go on: one broken dependency should not hide the rest
            print(json.dumps({"perturbation": name, "error": f"{type(e).__name__}: {e}"}), flush=True)
            continue
        seconds = time.perf_counter() - start
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            np.save(args.out / f"{name}.npy", out)
        print(json.dumps({"perturbation": name, "sequences": len(images), "frames": out.shape[1],
                          "seconds": round(seconds, 3)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
