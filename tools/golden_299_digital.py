"""Regenerate tests/corruptions/data/imagenet-c-299/: the official 299-px ImageNet-C generator's outputs.

Run with an interpreter that has the generator's dependencies (numpy, scipy, scikit-image, opencv,
Pillow; docs/faithfulness.md), giving a checkout of hendrycks/robustness (the distortion functions of
`ImageNet-C/create_c/make_imagenet_c_inception.py` are read from it at run time, nothing is copied)
and the 224-px golden inputs (uint8 (M, 224, 224, 3)):

    python tools/golden_299_digital.py <robustness checkout> <inputs.npy> [--out DIR] [--names a,b]

Writes:
- `inputs.npz` ("inputs": uint8 (2, 299, 299, 3)): inputs 0 and 2, each
  `np.array(Image.fromarray(x).resize((299, 299), Image.BICUBIC))`;
- `<corruption>.npz` ("outputs": uint8 (10, 299, 299, 3), severity-major) for the deterministic
  digital corruptions: `np.uint8(fn(Image.fromarray(x), severity))`, as the script's loader does;
- `brightness_q85.npz` ("outputs"): brightness's outputs after the script's storage step,
  PIL `save(quality=85, optimize=True)` and read back;
- `elastic_transform.npz` ("outputs", as above): the official elastic_transform with
  `np.random.seed(0)` before each image's call (a test replays those draws);
- `stats_digital.json`: for elastic_transform, per severity, the mean PSNR against the clean input
  (peak 255) and the mean intensity over the 2 images and seeds 0-3 (`np.random.seed(s)` before
  each image's call), their spread (max - min of the per-seed means) and the tolerances
  max(0.3 dB, 1.5 x spread), max(1.0, 1.5 x spread).
"""

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from corruptions_resolutions import load_official  # noqa: E402  (numpy-only: the official script's namespace)

DETERMINISTIC = ("brightness", "contrast", "saturate", "pixelate", "jpeg_compression")
RANDOM = ("elastic_transform",)
SEEDS = range(4)
SCRIPT = "ImageNet-C/create_c/make_imagenet_c_inception.py"


def make_inputs(inputs_224: np.ndarray) -> np.ndarray:
    return np.stack([np.array(Image.fromarray(x).resize((299, 299), Image.BICUBIC)) for x in inputs_224[[0, 2]]])


def q85(images: np.ndarray) -> np.ndarray:
    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=85, optimize=True)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.stack(out)


def psnr(out: np.ndarray, clean: np.ndarray) -> float:
    mse = np.mean((out.astype(np.float64) - clean.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout")
    parser.add_argument("inputs")
    default_out = Path(__file__).resolve().parents[1] / "tests/corruptions/data/imagenet-c-299"
    parser.add_argument("--out", default=str(default_out))
    parser.add_argument("--names", default=",".join(DETERMINISTIC + RANDOM))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    functions = load_official(Path(args.checkout) / SCRIPT)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(np.load(args.inputs))
    np.savez_compressed(out_dir / "inputs.npz", inputs=inputs)
    names = args.names.split(",")
    for name in (n for n in names if n in DETERMINISTIC):
        outputs = np.stack([np.uint8(functions[name](Image.fromarray(x), s)) for s in range(1, 6) for x in inputs])
        np.savez_compressed(out_dir / f"{name}.npz", outputs=outputs)
        if name == "brightness":
            np.savez_compressed(out_dir / "brightness_q85.npz", outputs=q85(outputs))
    stats = {"_about": f"{SCRIPT}: mean PSNR (dB, peak 255) and mean intensity over inputs.npz x seeds 0-3; "
                       "spread = max - min of the per-seed means"}
    for name in (n for n in names if n in RANDOM):
        outputs = []
        for severity in range(1, 6):
            for x in inputs:
                np.random.seed(0)
                outputs.append(np.uint8(functions[name](Image.fromarray(x), severity)))
        np.savez_compressed(out_dir / f"{name}.npz", outputs=np.stack(outputs))
        rows = []
        for severity in range(1, 6):
            per_seed = []
            for seed in SEEDS:
                outs = []
                for x in inputs:
                    np.random.seed(seed)
                    outs.append(np.uint8(functions[name](Image.fromarray(x), severity)))
                per_seed.append((np.mean([psnr(o, x) for o, x in zip(outs, inputs)]), np.mean(outs)))
            p, m = np.array(per_seed).T
            spread_p, spread_m = p.max() - p.min(), m.max() - m.min()
            rows.append({"severity": severity, "psnr": round(p.mean(), 3), "mean": round(m.mean(), 3),
                         "spread_psnr": round(spread_p, 3), "spread_mean": round(spread_m, 3),
                         "tol_psnr": round(max(0.3, 1.5 * spread_p), 3),
                         "tol_mean": round(max(1.0, 1.5 * spread_m), 3)})
            print(name, rows[-1], flush=True)
        stats[name] = rows
    if len(stats) > 1:
        (out_dir / "stats_digital.json").write_text(json.dumps(stats, indent=1) + "\n")


if __name__ == "__main__":
    main()
