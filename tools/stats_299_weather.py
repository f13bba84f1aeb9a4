"""Statistics of the official 299-px weather corruptions (snow, frost, fog, spatter) for
tests/corruptions/data/imagenet-c-299/stats_weather.json.

Runs the functions of hendrycks/robustness `ImageNet-C/create_c/make_imagenet_c_inception.py`
(imported at run time from a checkout, as benchmarks/corruptions_resolutions.py does) on test
images upscaled to 299 x 299 with PIL's bicubic filter. Per severity and seed s in 0..3, each image
gets `np.random.seed(s)` before its call and the output is truncated with np.uint8 (the script's
loader); the json holds, per severity, the mean over seeds of the images' mean PSNR against the input
(peak 255, over all values) and of their mean intensity, the spread (max - min over seeds), and the
tolerances max(0.3 dB, 1.5 x spread), max(1.0, 1.5 x spread).

Needs the generator's dependencies (numpy, scipy, scikit-image, opencv, Wand/ImageMagick); frost
opens ./frost1.png..frost5.jpg, so the script runs in a temporary folder holding links to them.

  python tools/stats_299_weather.py /path/to/robustness inputs.npy --images 0,2 \
      --frost /path/to/frost --out tests/corruptions/data/imagenet-c-299/stats_weather.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from corruptions_resolutions import load_official  # noqa: E402  (numpy-only: the official script's namespace)

SCRIPT = "ImageNet-C/create_c/make_imagenet_c_inception.py"
NAMES = ("snow", "frost", "fog", "spatter")
SEEDS = (0, 1, 2, 3)
SIZE = 299


def test_images(inputs: Path, indices: list[int]) -> np.ndarray:
    from PIL import Image

    base = np.load(inputs)
    return np.stack([np.asarray(Image.fromarray(base[i]).resize((SIZE, SIZE), Image.BICUBIC)) for i in indices])


def stats(functions: dict, name: str, images: np.ndarray) -> list[dict]:
    from PIL import Image

    rows = []
    for severity in range(1, 6):
        psnrs, means = [], []
        for seed in SEEDS:
            outs = []
            for img in images:
                np.random.seed(seed)
                outs.append(np.uint8(functions[name](Image.fromarray(img), severity)))
            out = np.stack(outs).astype(np.float64)
            mse = ((out - images.astype(np.float64)) ** 2).reshape(len(images), -1).mean(1)
            psnrs.append(float(np.mean(10 * np.log10(255.0**2 / mse))))
            means.append(float(out.mean()))
        spread_psnr, spread_mean = max(psnrs) - min(psnrs), max(means) - min(means)
        rows.append({"severity": severity, "psnr": round(float(np.mean(psnrs)), 3),
                     "mean": round(float(np.mean(means)), 3), "spread_psnr": round(spread_psnr, 3),
                     "spread_mean": round(spread_mean, 3), "tol_psnr": round(max(0.3, 1.5 * spread_psnr), 3),
                     "tol_mean": round(max(1.0, 1.5 * spread_mean), 3)})
        print(name, rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a hendrycks/robustness checkout")
    parser.add_argument("inputs", type=Path, help="uint8 (N, H, W, 3) .npy of test images")
    parser.add_argument("--images", default="0,2", help="indices into inputs")
    parser.add_argument("--frost", type=Path, required=True, help="folder of the official frost photographs")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    indices = [int(i) for i in args.images.split(",")]
    images = test_images(args.inputs.resolve(), indices)
    functions = load_official((args.checkout / SCRIPT).resolve())
    frost = args.frost.resolve()
    result = {"_about": (
        f"{SCRIPT} (299 px): per severity, the official functions' mean PSNR against the input and mean "
        f"intensity, averaged over seeds {SEEDS[0]}-{SEEDS[-1]} (np.random.seed(s) before each image's call, "
        f"np.uint8 output), their spread (max - min over seeds), and tolerances max(0.3 dB, 1.5 x spread), "
        f"max(1.0, 1.5 x spread). Images: {len(indices)} test images (indices {args.images}) upscaled to "
        f"299 x 299 with PIL BICUBIC; made by tools/stats_299_weather.py.")}
    out = args.out.resolve()
    with tempfile.TemporaryDirectory() as folder:
        for photograph in frost.iterdir():
            os.symlink(photograph, Path(folder) / photograph.name)
        os.chdir(folder)  # frost opens ./frostN relative to the working directory
        for name in NAMES:
            result[name] = stats(functions, name, images)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
