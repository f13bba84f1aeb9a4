"""Regenerate tests/corruptions/data/cbar/: the official CIFAR-10-C-bar transforms' outputs on fixed crops.

Run with an interpreter that has the generator's pinned dependencies (Python 3.8, numpy 1.22.0,
scipy 1.5.2, scikit-image 0.16.2, Pillow; see docs/cbar.md), giving the path of a checkout of
facebookresearch/augmentation-corruption (its `imagenet_c_bar/` folder is imported from there at
run time, nothing of it is copied):

    python tools/cbar_golden.py <augmentation-corruption checkout> <inputs.npy of uint8 (M, 32, 32, 3)> [--out DIR]

Writes, for the first 16 of every 8th input image (`inputs.npy`, uint8 (16, 32, 32, 3)):
- `outputs.npy`: uint8 (10, 5, 16, 32, 32, 3), the official transform of every (corruption,
  severity, image), drawn as `make_cifar10_c_bar.py` draws them (the transform called once per
  image, NumPy's global RNG) after `np.random.seed(1000 * c + s)` (c, s: 0-based corruption and
  severity indices in the csv's order);
- `params.npz`: the parameters each of those calls sampled (`record=True`), restated as the
  explicit arrays robench's transforms take (`<corruption>/<key>`, leading dims (5, 16)); the
  inner draws the official transform makes from its own `RandomState(seed)` (phases, grid
  uniforms, ray lengths, line positions) are replayed here in the same order;
- `random_stats.json`: per (corruption, severity), the official mean PSNR (of the mean squared
  error over the 16 images, peak 255) and mean intensity at seeds 0..7, with their mean and
  standard deviation over the seeds.
This takes a few minutes on one core.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

SEEDS = 8
MAX_RAYS = 199  # randint(50, 200) is at most 199
GRID = 40  # int(4 * 32 // scale) with scale >= 3.2


def explicit(name, severity, params):
    """The official sampled parameters as robench's explicit arrays (one image)."""
    p = params
    if name in ("blue_noise_sample", "brownish_noise"):
        rs = np.random.RandomState(seed=p["seed"])
        k = 1 if name == "blue_noise_sample" else 3
        return {"phases": np.stack([rs.uniform(low=0, high=2 * np.pi, size=(32, 16)) for _ in range(k)])}
    if name == "checkerboard_cutout":
        rs = np.random.RandomState(seed=p["seed"])
        scale = p["scales"][0]
        g = int(4 * 32 // scale)
        grid = np.ones((GRID, GRID))
        grid[:g, :g] = rs.uniform(size=(g, g))
        return {"angle": np.float64(p["angle"]), "scale": np.float64(scale), "grid": grid}
    if name == "inverse_sparkles":
        rs = np.random.RandomState(seed=p["seed"])
        z = np.zeros(MAX_RAYS)
        z[: p["rays"]] = [rs.randn() for _ in range(p["rays"])]
        return {"center": np.asarray(p["center"], float), "rays": np.int64(p["rays"]), "normals": z}
    if name == "sparkles":
        rs = np.random.RandomState(seed=p["seed"])
        z = np.zeros((5, MAX_RAYS))
        for k, rays in enumerate(p["nrays"]):
            z[k, :rays] = [rs.randn() for _ in range(rays)]
        return {"centers": np.asarray(p["centers"], float), "rays": np.asarray(p["nrays"], np.int64), "normals": z}
    if name == "lines":
        rs = np.random.RandomState(seed=p["seed"])
        u = np.array([[rs.uniform() for _ in range(3)] for _ in range(8)])  # at most 8 lines at these magnitudes
        return {"angle": np.float64(p["angle"]), "variation": np.float64(p["angle_variation"]), "uniforms": u}
    if name == "pinch_and_twirl":
        return {"signs": np.sign(p["angles"]).astype(np.int64)}
    if name == "ripple":
        return {"wavelengths": np.asarray(p["wavelengths"], float), "phases": np.asarray(p["phases"], float)}
    if name == "transverse_chromatic_abberation":
        s = float(severity) * 0.5 / 10.0
        base = [1.0, 1.0 + s / 2, 1.0 + s]
        return {"order": np.array([base.index(v) for v in p["scales"]], np.int64)}
    if name == "circular_motion_blur":
        return {}
    raise KeyError(name)


def stats(out, clean):
    mse = ((out.astype(np.float64) - clean.astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12))), float(out.mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout")
    parser.add_argument("inputs")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "corruptions", "data", "cbar"))
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.checkout, "imagenet_c_bar"))
    from transform_finder import build_transform  # the official code, imported from the checkout

    with open(os.path.join(args.checkout, "imagenet_c_bar", "cifar10_c_bar.csv")) as f:
        table = [(row.split(",")[0], [float(v) for v in row.split(",")[1:]]) for row in f.read().split("\n") if row]
    inputs = np.load(args.inputs)[::8][:16]
    assert inputs.shape == (16, 32, 32, 3) and inputs.dtype == np.uint8
    outputs = np.zeros((len(table), 5) + inputs.shape, np.uint8)
    params, report = {}, {"_about": __doc__.split("\n\n")[0], "seeds": SEEDS, "images": len(inputs)}
    for c, (name, magnitudes) in enumerate(table):
        t0 = time.time()
        rows = []
        for s, magnitude in enumerate(magnitudes):
            transform = build_transform(name=name, severity=magnitude, dataset_type="cifar")
            transform.record = True
            np.random.seed(1000 * c + s)
            found = []
            for i, image in enumerate(inputs):
                outputs[c, s, i], p = transform(image)
                found.append(explicit(name, magnitude, p))
            for key in found[0]:
                params.setdefault(f"{name}/{key}", []).append(np.stack([f[key] for f in found]))
            transform.record = False
            runs = []
            for seed in range(SEEDS):
                np.random.seed(seed)
                runs.append(stats(np.stack([transform(image) for image in inputs]), inputs))
            runs = np.array(runs)
            rows.append({"severity": s + 1, "magnitude": magnitude, "psnr": runs[:, 0].round(4).tolist(),
                         "mean": runs[:, 1].round(4).tolist(),
                         "psnr_mean": round(float(runs[:, 0].mean()), 4), "psnr_sd": round(float(runs[:, 0].std(ddof=1)), 4),
                         "mean_mean": round(float(runs[:, 1].mean()), 4), "mean_sd": round(float(runs[:, 1].std(ddof=1)), 4)})
        report[name] = rows
        print(f"{name}: {time.time() - t0:.1f} s", flush=True)
    os.makedirs(args.out, exist_ok=True)
    np.save(os.path.join(args.out, "inputs.npy"), inputs)
    np.save(os.path.join(args.out, "outputs.npy"), outputs)
    np.savez_compressed(os.path.join(args.out, "params.npz"), **{k: np.stack(v) for k, v in params.items()})
    with open(os.path.join(args.out, "random_stats.json"), "w") as f:
        json.dump(report, f, indent=1)
    versions = {m: __import__(m).__version__ for m in ("numpy", "scipy", "skimage", "PIL")}
    print("versions", versions, "python", sys.version.split()[0])


if __name__ == "__main__":
    main()
