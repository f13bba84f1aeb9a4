"""Dataset registry: name -> loader of a split as uint8 (N, 3, H, W) images and int64 labels.

CIFAR-sized loaders return the whole split in memory (a `Split`); the trainer moves it to the device
once. Image-file datasets (`imagenet`, `tiny-imagenet`, `folder:<path>`) return a
`robench.data.stream.StreamedSplit` instead: the same labels, classes and length, its images
decoded chunk by chunk when read (the eval loop reads both through robench.eval.sources). A loader is `load(name, train, **options) -> Split`; its module is imported only
when the dataset is used. `hf:<repo-id>` names are one family, served by the Hugging Face loader;
`hf-stream:<repo-id>` streams the same datasets into an on-disk cache (a ChunkedSplit).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch

from robench.errors import RobenchError
from robench.registry import Registry


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


def _loader(module: str):
    """The `load` function of robench.data.<module>, imported on the first call."""

    def load(name: str, train: bool, **options) -> Split:
        return importlib.import_module(f"robench.data.{module}").load(name, train, **options)

    return load


DATASETS = Registry("dataset")
DATASETS.add("cifar10", _loader("cifar"), "CIFAR-10 (50k/10k, 32x32, 10 classes), downloaded from cs.toronto.edu")
DATASETS.add("cifar100", _loader("cifar"), "CIFAR-100 (50k/10k, 32x32, 100 fine classes), downloaded from cs.toronto.edu")
DATASETS.add("cifar10.1", _loader("cifar101"), "CIFAR-10.1 v6 (2,000 new CIFAR-10 test images, natural shift); "
             "eval only, for CIFAR-10 models")
DATASETS.add("shapes10", _loader("shapes"),
             "embedded: 10 procedurally drawn shapes on textured backgrounds, 20k/2k, no download")
DATASETS.add("fashion-mnist", _loader("idx"),
             "Fashion-MNIST (60k/10k, 28x28 grey -> 32x32 RGB); Debian package dataset-fashion-mnist")
DATASETS.add("mnist", _loader("idx"), "MNIST (60k/10k, 28x28 grey -> 32x32 RGB)")
DATASETS.add("imagenet", _loader("folders"), "ImageNet validation set (50k JPEGs, streamed; val/<wnid>/ or flat with "
             "labels), Resize(256)+CenterCrop(224); --subset robustbench-5k; eval only")
DATASETS.add("tiny-imagenet", _loader("folders"), "Tiny-ImageNet (64 px, 200 classes, tiny-imagenet-200/): val/ "
             "streamed for eval, train/ decoded into memory for training")
DATASETS.add("folder:<path>", _loader("folders"), "any class-per-folder image tree (ImageFolder's class order), "
             "streamed, Resize(256)+CenterCrop(224) by default; a tree with train/ and val/ (or test/) is "
             "trainable, its images used as stored")
DATASETS.add("hf:<repo-id>", _loader("hf"), "any Hugging Face image dataset (pip install 'robench[hf]'); "
             "--image-column, --label-column, --image-size")
DATASETS.add("hf-stream:<repo-id>", _loader("hf_stream"), "a Hugging Face image dataset's test split in streaming "
             "mode, decoded once into an on-disk cache chunk by chunk (--cache-dir; bounded memory); eval only")


def load_split(name: str, train: bool, limit: int | None = None, **options):
    """The train (train=True) or test split of a registered dataset (a Split, or a StreamedSplit for
    image files); with `limit`, only its first `limit` images (the one place a limit is applied;
    loaders may use it to make less)."""
    if limit is not None and limit < 1:
        raise RobenchError(f"a limit of images must be at least 1, got {limit}")
    split = DATASETS.get(name).factory(name, train, limit=limit, **options)
    if limit is not None and len(split) > limit:
        if isinstance(split, Split):
            split.images, split.labels = split.images[:limit], split.labels[:limit]
        else:
            split = split.take(limit)
    return split
