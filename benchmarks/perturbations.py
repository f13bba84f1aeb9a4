"""CIFAR-10-P generation speed: robench's batched sequences vs the official generator's code.

Times `perturbations.generated_sequences` for each of the ten perturbations on N sequences (the
golden CIFAR inputs tiled when ../shared is beside the clone, else random images) on this CPU,
then, given --official-python (an environment with the generator's dependencies: NumPy, SciPy,
scikit-image, OpenCV 4.x, Wand, torch, torchvision 0.2.x) and --official-script (make_cifar_p.py
from a snapshot of hendrycks/robustness), runs benchmarks/official_p.py on the same images and
compares: seconds per perturbation and, for the deterministic perturbations, how many output
values differ. One JSON line per perturbation, then a total line extrapolated to the 10,000
sequences of CIFAR-10-P (the extrapolation is linear in N; it says so). Both sides run with
--threads threads (the official one through OMP_NUM_THREADS): on a shared, oversubscribed CPU two
OpenMP threads made torch's element-wise passes ~10x slower than one.

  python benchmarks/perturbations.py [--n 200] [--threads 1] [--official-python P --official-script S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robench.corruptions.perturbations import PERTURBATIONS, generated_sequences

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "cifar10c" / "inputs.npy"
RANDOM = {"gaussian_noise", "shot_noise", "spatter"}  # no seed reproduces the official draws
FULL = 10_000


def make_images(n: int) -> tuple[np.ndarray, str]:
    if GOLDEN.exists():
        base, source = np.load(GOLDEN), "golden inputs, tiled"
    else:
        base, source = np.random.default_rng(0).integers(0, 256, (128, 32, 32, 3), dtype=np.uint8), "random"
    reps = -(-n // base.shape[0])
    return np.concatenate([base] * reps)[:n], source


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--official-python", type=Path)
    parser.add_argument("--official-script", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, source = make_images(args.n)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    ours = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        official = {}
        if args.official_python and args.official_script:
            np.save(tmp / "images.npy", images)
            run = subprocess.run([str(args.official_python), str(Path(__file__).with_name("official_p.py")),
                                  "--script", str(args.official_script), "--images", str(tmp / "images.npy"),
                                  "--out", str(tmp / "official")], capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            for line in run.stdout.splitlines():
                row = json.loads(line)
                official[row["perturbation"]] = row
            if run.returncode:
                print(run.stderr[-2000:], file=sys.stderr)
        total_ours = total_official = 0.0
        for name in PERTURBATIONS:
            list(generated_sequences(x[:2], name, seed=0))  # warm-up (cached sampling maps)
            start = time.perf_counter()
            out = torch.cat([b for _, b in generated_sequences(x, name, seed=0)])
            seconds = time.perf_counter() - start
            ours[name] = seconds
            total_ours += seconds
            row = {"perturbation": name, "sequences": args.n, "frames": out.shape[1], "robench_s": round(seconds, 2),
                   "robench_seq_per_s": round(args.n / seconds, 1)}
            if name in official:
                ref = official[name]
                if "error" in ref:
                    row["official_error"] = ref["error"]
                else:
                    total_official += ref["seconds"]
                    row.update(official_s=ref["seconds"], speedup=round(ref["seconds"] / seconds, 2))
                    theirs = np.load(tmp / "official" / f"{name}.npy")
                    mine = out.permute(0, 1, 3, 4, 2).numpy()
                    if name in RANDOM:
                        row["differing_values"] = "random (distribution only)"
                    else:
                        diff = np.abs(theirs.astype(int) - mine.astype(int))
                        row.update(differing_values=int((diff > 0).sum()), values=int(diff.size),
                                   max_abs_diff=int(diff.max()))
            print(json.dumps(row), flush=True)
        scale = FULL / args.n
        total = {"total": "10 perturbations", "measured_sequences": args.n, "images": source,
                 "threads": args.threads, "robench_s": round(total_ours, 1),
                 "robench_10k_s_extrapolated": round(total_ours * scale, 0)}
        if official:
            total.update(official_s=round(total_official, 1), official_10k_s_extrapolated=round(total_official * scale, 0))
        print(json.dumps(total), flush=True)


if __name__ == "__main__":
    main()
