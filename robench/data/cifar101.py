"""CIFAR-10.1 v6 (Recht et al. 2019): 2,000 new test images for CIFAR-10 models, a natural
distribution shift. Eval only: there is no training split.

The release is two NumPy files in the public repository github.com/modestyachts/CIFAR-10.1
(`datasets/`): `cifar10.1_v6_data.npy`, uint8 (2000, 32, 32, 3) HWC RGB, and
`cifar10.1_v6_labels.npy`, integer class indices (2000,) in CIFAR-10's class order. Both are
downloaded into `<data dir>/CIFAR-10.1/` and verified against their published SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robench.data.download import data_dir, fetch, verify
from robench.data.registry import Split
from robench.errors import RobenchError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BASE = "https://raw.githubusercontent.com/modestyachts/CIFAR-10.1/master/datasets/"
FOLDER = "CIFAR-10.1"


@dataclass(frozen=True)
class File:
    name: str
    url: str
    checksum: str  # "sha256:<hex>", as download.verify takes it
    size: int


FILES = {
    "data": File("cifar10.1_v6_data.npy", BASE + "cifar10.1_v6_data.npy",
                 "sha256:2997188e5816f5bd545dc77771b6227828c28146049fcecf3fa10775474cacc6", 6_144_128),
    "labels": File("cifar10.1_v6_labels.npy", BASE + "cifar10.1_v6_labels.npy",
                   "sha256:ae40beda001693674edc94d925ee8268cfe68905f8f9aff800c8dcdfcd6c9448", 8_128),
}


def ensure_files() -> dict[str, object]:
    """Paths of the two files: in the data dir (verified), or downloaded and verified there."""
    folder = data_dir() / FOLDER
    paths = {}
    for key, spec in FILES.items():
        path = folder / spec.name
        if path.exists():
            verify(path, spec.checksum, "cifar10.1")
        else:
            fetch(spec.url, path, spec.checksum, "cifar10.1", size=spec.size)
        paths[key] = path
    return paths


def load(name: str, train: bool, limit: int | None = None, **_options) -> Split:
    if train:
        raise RobenchError("cifar10.1 is a test set only (2,000 images); train on cifar10 and evaluate the run "
                           "with --dataset cifar10.1")
    paths = ensure_files()
    images, labels = np.load(paths["data"]), np.load(paths["labels"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise RobenchError(f"{paths['data']} must hold uint8 (N, 32, 32, 3) images, got {images.dtype} {images.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (images.shape[0],) or \
            labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise RobenchError(f"{paths['labels']} must hold {images.shape[0]} class indices 0-9")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Split(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
                 torch.from_numpy(labels.astype(np.int64)), 10, list(CLASSES))
