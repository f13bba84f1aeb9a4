"""CIFAR-10-C-bar generation speed: robench's `corrupt_bar` vs the official transforms, same images.

robench corrupts --n images per corruption at each of the 5 severities on this CPU (--threads
torch threads). The official transforms (facebookresearch/augmentation-corruption imagenet_c_bar/,
imported from --checkout in a subprocess run by --official-python, an interpreter with the
generator's dependencies) corrupt the first --official-n of the same images, one call per image as
make_cifar10_c_bar.py makes them, in one process (the script's DataLoader spreads this over
--num_workers processes; divide by the worker count for its wall time on more cores).

Prints one JSON line per corruption (images/s of each, the speed-up), then a total line that
extrapolates both to the full set, 10 corruptions x 5 severities x 10,000 images.

  python benchmarks/cbar.py [--n 2000] [--official-n 32] [--threads 1]
      [--official-python <venv with its deps>/bin/python --checkout <augmentation-corruption checkout>]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robench.corruptions.cbar import corrupt_bar
from robench.corruptions.cbar_protocol import CBAR_CORRUPTIONS, MAGNITUDES

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "corruptions" / "data" / "cbar" / "inputs.npy"
FULL = len(CBAR_CORRUPTIONS) * 5 * 10_000

# Run by --official-python: seconds per (corruption) for all 5 magnitudes over the given images.
OFFICIAL = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1] + "/imagenet_c_bar")
from transform_finder import build_transform
images = np.load(sys.argv[2])
table = json.loads(sys.argv[3])
np.random.seed(0)
for name, magnitudes in table.items():
    start = time.perf_counter()
    for m in magnitudes:
        t = build_transform(name=name, severity=m, dataset_type="cifar")
        for image in images:
            t(image)
    print(json.dumps({"corruption": name, "seconds": time.perf_counter() - start}), flush=True)
"""


def images(n: int) -> torch.Tensor:
    base = torch.from_numpy(np.load(GOLDEN)).permute(0, 3, 1, 2)
    return base.repeat(-(-n // base.shape[0]), 1, 1, 1)[:n].contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--official-n", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--corruptions", default=",".join(CBAR_CORRUPTIONS))
    parser.add_argument("--official-python", default=sys.executable,
                        help="a Python with the generator's pinned dependencies (its requirements)")
    parser.add_argument("--checkout", default=None, help="augmentation-corruption checkout; omit to skip the official side")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.corruptions.split(",")
    x = images(args.n)
    official = {}
    if args.checkout:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "images.npy"
            np.save(path, x[: args.official_n].permute(0, 2, 3, 1).numpy())
            table = json.dumps({name: MAGNITUDES[name] for name in names})
            run = subprocess.run([args.official_python, "-W", "ignore", "-c", OFFICIAL, args.checkout, str(path), table],
                                 capture_output=True, text=True, check=True)
            for line in run.stdout.splitlines():
                row = json.loads(line)
                official[row["corruption"]] = 5 * args.official_n / row["seconds"]
    total_ours = total_official = 0.0
    for name in names:
        corrupt_bar(x[:8], name, 1, seed=0)  # warm-up (caches of the rotation and zoom taps)
        start = time.perf_counter()
        for severity in range(1, 6):
            corrupt_bar(x, name, severity, seed=severity)
        ours = 5 * args.n / (time.perf_counter() - start)
        row = {"corruption": name, "robench_images_per_s": round(ours, 1), "robench_n": args.n, "threads": args.threads}
        total_ours += 5 * 10_000 / ours
        if name in official:
            row.update(official_images_per_s=round(official[name], 1), official_n=args.official_n,
                       speedup=round(ours / official[name], 1))
            total_official += 5 * 10_000 / official[name]
        print(json.dumps(row), flush=True)
    total = {"total": f"{len(names)} corruptions x 5 severities x 10,000 images (extrapolated)",
             "robench_seconds": round(total_ours, 1)}
    if official:
        total.update(official_seconds=round(total_official, 1), speedup=round(total_official / total_ours, 1))
    print(json.dumps(total), flush=True)


if __name__ == "__main__":
    main()
