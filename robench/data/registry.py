"""Dataset registry: name -> loader of a split as uint8 (N, 3, H, W) images and int64 labels.

Each loader returns the whole split in memory (CIFAR-sized data is small); the trainer moves it to
the device once. `hf:<repo-id>` names are resolved by the Hugging Face loader.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import torch

from robench.errors import RobenchError, unknown_name


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, 3, H, W)
    labels: torch.Tensor  # int64 (N,)
    num_classes: int
    classes: list[str] = field(default_factory=list)
    # How the images entered robench (e.g. "grey replicated to RGB, zero-padded 28->32"), for run.json.
    preprocessing: str = "none"

    def __post_init__(self):
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4 and self.images.shape[1] == 3
        assert self.labels.shape == (self.images.shape[0],)

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    module: str  # robench.data.<module> defines load(name, train, **options) -> Split
    cset: str | None = None  # the official corruption release for its test set, if any


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("cifar10", "CIFAR-10 (50k/10k, 32x32, 10 classes), downloaded from cs.toronto.edu", "cifar", "cifar10-c"),
        DatasetInfo("cifar100", "CIFAR-100 (50k/10k, 32x32, 100 fine classes), downloaded from cs.toronto.edu", "cifar", "cifar100-c"),
        DatasetInfo("shapes10", "embedded: 10 procedurally drawn shapes on textured backgrounds, 20k/2k, no download", "shapes"),
        DatasetInfo("fashion-mnist", "Fashion-MNIST (60k/10k, 28x28 grey -> 32x32 RGB); Debian package dataset-fashion-mnist", "idx"),
        DatasetInfo("mnist", "MNIST (60k/10k, 28x28 grey -> 32x32 RGB)", "idx"),
        DatasetInfo("hf:<repo-id>", "any Hugging Face image dataset (pip install 'robench[hf]'); --image-column/--label-column", "hf"),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    if name.startswith("hf:"):
        if len(name) <= 3:
            raise RobenchError("hf: needs a dataset id, e.g. --dataset hf:uoft-cs/cifar10")
        return DatasetInfo(name, "Hugging Face dataset", "hf")
    if name not in DATASETS:
        raise unknown_name("dataset", name, [n for n in DATASETS])
    return DATASETS[name]


def load_split(name: str, train: bool, **options) -> Split:
    """Load the train (train=True) or test split of a registered dataset."""
    info = dataset_info(name)
    module = importlib.import_module(f"robench.data.{info.module}")
    loader: Callable[..., Split] = module.load
    return loader(name, train, **options)
