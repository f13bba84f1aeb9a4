"""MNIST and Fashion-MNIST from IDX files (gzipped or not), with a reader of our own.

Lookup order: `<data dir>/<dataset>/`, then Debian's location (package dataset-fashion-mnist puts
Fashion-MNIST in /usr/share/datasets/fashion-mnist/), then a download from the official mirrors
(the URLs and md5s torchvision uses). Downloads are md5-verified; local files, which may be
recompressed (Debian's are), are checked by their IDX headers and sizes instead.

They enter robench as 3-channel 32x32 uint8: the grey 28x28 image is replicated to R, G and B and
zero-padded by 2 px on every side, so the 32x32 corruption parameters apply unchanged and the
digit/garment keeps its native resolution.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robench.data.download import data_dir, fetch
from robench.data.registry import Split
from robench.errors import RobenchError

PREPROCESSING = "grey 28x28 replicated to RGB and zero-padded by 2 px to 32x32"
_DTYPES = {0x08: np.uint8}


@dataclass(frozen=True)
class IdxDataset:
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # file name -> md5 of the official .gz
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    debian_package: str | None = None


IDX_DATASETS = {
    "mnist": IdxDataset(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        tuple(str(d) for d in range(10)),
        ("/usr/share/datasets/mnist",),
    ),
    "fashion-mnist": IdxDataset(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        ("/usr/share/datasets/fashion-mnist",),
        "dataset-fashion-mnist",
    ),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file: 2 zero bytes, a type code, the number of dimensions, big-endian sizes, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise RobenchError(f"cannot read {path} ({e}); delete it and download again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise RobenchError(f"{path} is not an IDX file of uint8 data")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise RobenchError(f"{path} is truncated ({data.size} of {int(np.prod(shape))} values); delete it and download again")
    return data.reshape(shape)


def _locate(name: str, file: str) -> Path:
    spec = IDX_DATASETS[name]
    stem = file.removesuffix(".gz")
    local_dirs = [data_dir() / name, *map(Path, spec.system_dirs)]
    for folder in local_dirs:
        for candidate in (folder / file, folder / stem):
            if candidate.exists():
                return candidate
    errors = []
    for mirror in spec.mirrors:
        try:
            return fetch(mirror + file, data_dir() / name / file, spec.md5[file], name)
        except RobenchError as e:
            errors.append(str(e))
    if any("checksum" in e for e in errors):
        raise RobenchError(next(e for e in errors if "checksum" in e))
    hint = f"install the Debian package {spec.debian_package} (apt-get install {spec.debian_package}) or " if spec.debian_package else ""
    raise RobenchError(f"{name}: {file} not found and cannot be downloaded; {hint}put the IDX files in {data_dir() / name}")


def load(name: str, train: bool, **_options) -> Split:
    prefix = "train" if train else "t10k"
    images = read_idx(_locate(name, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(_locate(name, f"{prefix}-labels-idx1-ubyte.gz"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise RobenchError(f"{name}: images {images.shape} and labels {labels.shape} do not match")
    grey = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28)
    pad = max(0, (32 - grey.shape[-1]) // 2)
    rgb = F.pad(grey, (pad, pad, pad, pad)).expand(-1, 3, -1, -1).contiguous()
    return Split(rgb, torch.from_numpy(labels.astype(np.int64)), len(IDX_DATASETS[name].classes),
                 list(IDX_DATASETS[name].classes), preprocessing=PREPROCESSING)
