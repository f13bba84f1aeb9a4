"""CIFAR-10 and CIFAR-100 from the canonical python tarballs, read straight from the pickles."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np
import torch

from robench.data.download import data_dir, extract_tar, fetch
from robench.data.registry import Split
from robench.errors import RobenchError


@dataclass(frozen=True)
class Tarball:
    url: str
    md5: str
    folder: str  # top folder inside the tarball
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    meta_file: str
    names_key: bytes

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


TARBALLS = {
    "cifar10": Tarball(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
        b"labels", "batches.meta", b"label_names",
    ),
    "cifar100": Tarball(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python", ("train",), ("test",), b"fine_labels", "meta", b"fine_label_names",
    ),
}


def ensure_extracted(name: str):
    """The extracted folder, from the cache, a tarball the user placed, or a verified download."""
    spec = TARBALLS[name]
    root = data_dir()
    folder = root / spec.folder
    if folder.is_dir():
        return folder
    archive = root / spec.filename
    if not archive.exists():
        fetch(spec.url, archive, spec.md5, name)
    return extract_tar(archive, root, spec.folder, spec.md5)  # verifies a tarball placed by hand too


def _unpickle(path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise RobenchError(f"missing {path}; delete {path.parent} and run again to re-extract") from None
    except Exception as e:  # truncated or foreign file: pickle raises many types
        raise RobenchError(f"cannot read {path} ({type(e).__name__}); delete {path.parent} and run again") from None


def load(name: str, train: bool, **_options) -> Split:
    spec = TARBALLS[name]
    folder = ensure_extracted(name)
    images, labels = [], []
    for file in spec.train_files if train else spec.test_files:
        batch = _unpickle(folder / file)
        if not isinstance(batch, dict) or b"data" not in batch or spec.label_key not in batch:
            raise RobenchError(f"{folder / file} is not a CIFAR batch (it unpickles to a {type(batch).__name__} "
                               f"without data and labels); delete {folder} and run again")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072 or len(batch[spec.label_key]) != data.shape[0]:
            raise RobenchError(f"{folder / file} is not a CIFAR batch (data {data.shape}); delete {folder} and run again")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are R plane, G plane, B plane
        labels.extend(batch[spec.label_key])
    meta = _unpickle(folder / spec.meta_file)
    if not isinstance(meta, dict) or spec.names_key not in meta:
        raise RobenchError(f"{folder / spec.meta_file} holds no class names; delete {folder} and run again")
    classes = [c.decode() for c in meta[spec.names_key]]
    return Split(
        torch.from_numpy(np.concatenate(images)),
        torch.tensor(labels, dtype=torch.int64),
        num_classes=len(classes),
        classes=classes,
    )
