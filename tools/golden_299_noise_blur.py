"""Golden data for the imagenet-c-299 protocol (hendrycks/robustness make_imagenet_c_inception.py, 299 px).

Runs in a Python with the official generator's dependencies (numpy, scipy, scikit-image, opencv,
Wand/ImageMagick), importing neither torch nor robench; the official functions are read at run time
from a checkout of hendrycks/robustness (`--official-dir .../ImageNet-C/create_c`), as
benchmarks/corruptions_resolutions.py does. Writes into --out:

- inputs.npz: `inputs`, uint8 (2, 299, 299, 3): images 0 and 2 of the 224-px golden photo crops
  (--inputs, uint8 (N, 224, 224, 3)) upscaled to 299 x 299 with PIL BICUBIC.
- <corruption>.npz (`outputs`, uint8 (10, 299, 299, 3), rows severity-major) for each deterministic
  corruption named by --deterministic: the official function, then np.uint8, as the script does.
- stats_<tag>.json for the random corruptions named by --random: per severity the mean over seeds of the
  mean PSNR against the input and of the mean intensity (np.random.seed(s) before each image's call),
  their spread (max - min over the seeds) and tolerances max(0.3 dB, 1.5 x spread),
  max(1.0, 1.5 x spread); `--seeds name=k` runs fewer seeds for slow ones (then tol_psnr is
  max(0.5 dB, ...), as one seed has no spread to measure).

  <venv with the official deps>/bin/python tools/golden_299_noise_blur.py --official-dir <robustness checkout>/ImageNet-C/create_c \\
      --inputs ../shared/golden/imagenet-c/inputs.npy --out tests/corruptions/data/imagenet-c-299 \\
      --deterministic defocus_blur,zoom_blur,gaussian_blur \\
      --random gaussian_noise,shot_noise,impulse_noise,speckle_noise,motion_blur,glass_blur \\
      --seeds glass_blur=1 --tag noise_blur
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from corruptions_resolutions import load_official  # noqa: E402  (numpy-only: the official script's namespace)

SCRIPT = "make_imagenet_c_inception.py"
SIZE = 299
PICK = (0, 2)  # which golden 224-px crops
SEVERITIES = range(1, 6)


def make_inputs(path: Path) -> np.ndarray:
    base = np.load(path)
    return np.stack([np.asarray(Image.fromarray(base[i]).resize((SIZE, SIZE), Image.BICUBIC)) for i in PICK])


def psnr(out: np.ndarray, clean: np.ndarray) -> float:
    mse = ((out.astype(np.float64) - clean.astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--official-dir", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--deterministic", default="")
    parser.add_argument("--random", default="")
    parser.add_argument("--seeds", default="", help="name=k,... seeds 0..k-1 for slow ones (default 4)")
    parser.add_argument("--tag", default="random")
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.official_dir)  # frost reads ./frost*.png
    functions = load_official(Path(args.official_dir) / SCRIPT)
    inputs = make_inputs(Path(args.inputs))
    np.savez_compressed(out_dir / "inputs.npz", inputs=inputs)
    pil = [Image.fromarray(img) for img in inputs]

    for name in filter(None, args.deterministic.split(",")):
        t = time.time()
        outputs = np.stack([np.uint8(functions[name](img, s)) for s in SEVERITIES for img in pil])
        np.savez_compressed(out_dir / f"{name}.npz", outputs=outputs)
        print(name, outputs.shape, f"{time.time() - t:.1f}s", flush=True)

    seeds = {k: int(v) for k, v in (item.split("=") for item in args.seeds.split(",") if item)}
    stats_path = out_dir / f"stats_{args.tag}.json"
    stats = {"_about": "imagenet-c-299 (make_imagenet_c_inception.py) on inputs.npz: per random corruption and "
                       "severity, the official mean PSNR against the input and mean intensity, averaged over "
                       "seeds 0..seeds-1 (np.random.seed(s) before each image's call), their spread (max - min "
                       "over the seeds) and tolerances max(0.3 dB, 1.5 x spread), max(1.0, 1.5 x spread); "
                       "with a single seed, tol_psnr is 0.5 dB."}
    for name in filter(None, args.random.split(",")):
        t = time.time()
        n_seeds, rows = seeds.get(name, 4), []
        for s in SEVERITIES:
            per_seed = []
            for seed in range(n_seeds):
                outs = []
                for img, clean in zip(pil, inputs):
                    np.random.seed(seed)
                    outs.append(np.uint8(functions[name](img, s)))
                per_seed.append((np.mean([psnr(o, c) for o, c in zip(outs, inputs)]), float(np.mean(outs))))
            p, m = np.array(per_seed).T
            spread_p, spread_m = float(p.max() - p.min()), float(m.max() - m.min())
            rows.append({"severity": s, "seeds": n_seeds, "psnr": round(float(p.mean()), 3),
                         "mean": round(float(m.mean()), 3), "spread_psnr": round(spread_p, 3),
                         "spread_mean": round(spread_m, 3),
                         "tol_psnr": round(max(0.3 if n_seeds > 1 else 0.5, 1.5 * spread_p), 3),
                         "tol_mean": round(max(1.0, 1.5 * spread_m), 3)})
        if stats_path.exists():  # keep other corruptions' rows (e.g. a slow one run in another process)
            stats = {**json.loads(stats_path.read_text()), **stats}
        stats[name] = rows
        stats_path.write_text(json.dumps(stats, indent=1) + "\n")  # after each corruption: partial runs keep theirs
        print(name, f"{time.time() - t:.1f}s", json.dumps(rows), flush=True)


if __name__ == "__main__":
    main()
