"""Datasets as uint8 tensors: a registry of loaders, official C-sets, and the device-resident loader."""

from robench.data.registry import DATASETS, Split, load_split

__all__ = ["DATASETS", "Split", "load_split"]
