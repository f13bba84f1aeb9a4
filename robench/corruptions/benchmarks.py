"""The benchmarks an evaluation can measure, and their cell names (facts; imports no torch).

    c      the -C corruptions of a protocol (robench.corruptions.protocol): 19 x 5 cells + clean
    c-bar  CIFAR-10-C-bar (Mintun et al. 2021): 10 corruptions x 5 severities + clean, errors
    p      CIFAR-10-P (Hendrycks & Dietterich 2019): 10 perturbation sequences per test image;
           a cell is a perturbation, measured by flip probability and top-5 distance

`--benchmark` takes these names, or the dataset-qualified ones people write (cifar10-c-bar,
cifar100-p, ...).
"""

from __future__ import annotations

from robench.corruptions.cbar_protocol import CBAR_CORRUPTIONS
from robench.corruptions.protocol import CORRUPTION_SETS
from robench.errors import RobenchError

BENCHMARKS = ("c", "c-bar", "p")

# CIFAR-10-C-bar's corruptions in the order of its cifar10_c_bar.csv (its facts: cbar_protocol).
CBAR = CBAR_CORRUPTIONS

# The 10 perturbations of the official CIFAR-10-P evaluation (hendrycks/robustness
# ImageNet-P/cifar-p-eval.py), in its order; mFP and mT5D are means over them. Frames per sequence.
PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter",
                 "brightness", "translate", "rotate", "tilt", "scale")
FRAMES = {name: 31 for name in PERTURBATIONS} | {"motion_blur": 21, "translate": 16}

# The protocol column of -C-bar and -P rows (one generator each, written for 32 px).
PROTOCOL_OF = {"c-bar": "c-bar", "p": "cifar10-p"}


def parse_benchmark(spec: str) -> str:
    """'c' | 'c-bar' | 'p', also written with a dataset in front ('cifar10-c-bar', 'cifar100-p')."""
    name = spec.strip().lower()
    for prefix in ("cifar10-", "cifar100-"):
        if name.startswith(prefix) and name[len(prefix):] in BENCHMARKS:
            name = name[len(prefix):]
    if name not in BENCHMARKS:
        raise RobenchError(f"unknown --benchmark '{spec}'; choose one of: {', '.join(BENCHMARKS)} "
                           f"(or cifar10-c-bar, cifar10-p, ...)")
    return name


def check_size(benchmark: str, height: int, width: int, dataset: str) -> None:
    """C-bar and -P are each one generator written for CIFAR's 32 x 32 images (-C has protocols)."""
    if benchmark != "c" and (height, width) != (32, 32):
        raise RobenchError(f"--benchmark {benchmark} is defined on 32x32 images (CIFAR), {dataset} has "
                           f"{height}x{width}")


def check_own_generator(benchmark: str, protocol: str, storage: bool) -> None:
    """C-bar and -P have one generator each: a -C protocol or --no-storage given with them is a mistake."""
    if benchmark == "c":
        return
    flag = f"--protocol {protocol}" if protocol != "auto" else "--no-storage" if not storage else None
    if flag:
        raise RobenchError(f"{flag} is for -C corruptions; --benchmark {benchmark} has its own generator "
                           f"(leave it out)")


def parse_names(benchmark: str, spec: str) -> list[str]:
    """The cells' names a --corruptions spec asks for in a benchmark: 'all' or 'name,name,...' for
    c-bar and p (-C has its own sets: protocol.parse_corruptions)."""
    if benchmark == "c":
        from robench.corruptions.protocol import parse_corruptions

        return parse_corruptions(spec)
    known = CBAR if benchmark == "c-bar" else PERTURBATIONS
    spec = spec.strip()
    if spec in ("all", "standard"):
        return list(known)
    if spec in CORRUPTION_SETS:  # extra / none: -C's sets do not apply
        raise RobenchError(f"--corruptions {spec} is a -C set; for --benchmark {benchmark} use all or names from: "
                           f"{', '.join(known)}")
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise RobenchError(f"unknown name '{(unknown or [spec])[0]}' in --corruptions for --benchmark {benchmark}; "
                           f"use all or names from: {', '.join(known)}")
    return [n for n in known if n in names]
