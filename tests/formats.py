"""Builders of tiny files in the exact real formats: CIFAR tarballs, official C-sets, IDX, HF parquet;
and `png_size`, the size a PNG file states."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from robench.corruptions import CORRUPTIONS


def tiny_images(n: int, seed: int) -> np.ndarray:
    """uint8 (n, 32, 32, 3) HWC images with structure (gradients + noise), reproducible."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, 32)
    base = (ramp[None, :, None, None] + ramp[None, None, :, None]) / 2
    return np.clip(base * rng.uniform(0.3, 1, (n, 1, 1, 3)) + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255).astype(np.uint8)


def cifar_tarball(directory: Path, n_train: int = 50, n_test: int = 20, classes: int = 10, seed: int = 0) -> Path:
    """A cifar-10-python.tar.gz with the real layout: 5 data batches, test_batch, batches.meta."""
    rng = np.random.default_rng(seed)
    train, test = tiny_images(n_train, seed), tiny_images(n_test, seed + 1)
    train_labels, test_labels = rng.integers(0, classes, n_train), rng.integers(0, classes, n_test)
    members = {}
    per_batch = np.array_split(np.arange(n_train), 5)
    for i, rows in enumerate(per_batch, start=1):
        members[f"data_batch_{i}"] = _batch(train[rows], train_labels[rows], f"training batch {i} of 5")
    members["test_batch"] = _batch(test, test_labels, "testing batch 1 of 1")
    members["batches.meta"] = pickle.dumps({b"label_names": [f"class{k}".encode() for k in range(classes)],
                                            b"num_cases_per_batch": 10000, b"num_vis": 3072})
    path = Path(directory) / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def _batch(images_hwc: np.ndarray, labels: np.ndarray, label: str) -> bytes:
    # CIFAR rows: 1024 red values, then 1024 green, then 1024 blue, each plane row-major.
    data = images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072)
    return pickle.dumps({b"batch_label": label.encode(), b"labels": [int(v) for v in labels], b"data": data,
                         b"filenames": [f"img{i}.png".encode() for i in range(len(labels))]}, protocol=2)


def cifar_test_split(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """The (images HWC, labels) of test_batch inside a tarball made by cifar_tarball."""
    with tarfile.open(tarball) as tar:
        batch = pickle.loads(tar.extractfile("cifar-10-batches-py/test_batch").read(), encoding="bytes")
    return batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.array(batch[b"labels"])


def official_cset(folder: Path, images_hwc: np.ndarray, labels: np.ndarray, corruptions=CORRUPTIONS,
                  darken: dict[int, int] | None = None) -> Path:
    """A CIFAR-10-C-layout folder: <corruption>.npy uint8 (5N, 32, 32, 3) severity-major, labels.npy uint8 (5N,).

    Severity s's rows are the clean images with s*20 subtracted (or `darken[s]`), so tests can tell the
    severities apart.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stacked = []
    for s in range(1, 6):
        shift = (darken or {}).get(s, 20 * s)
        stacked.append(np.clip(images_hwc.astype(int) - shift, 0, 255).astype(np.uint8))
    data = np.concatenate(stacked)
    for name in corruptions:
        np.save(folder / f"{name}.npy", data)
    np.save(folder / "labels.npy", np.tile(labels.astype(np.uint8), 5))
    return folder


def idx_file(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def hf_parquet_dataset(folder: Path, n_train: int = 40, n_test: int = 16, size: int = 32, seed: int = 0) -> Path:
    """A local Hugging Face dataset: data/train-*.parquet and data/test-*.parquet with Image and ClassLabel features."""
    import datasets
    from PIL import Image

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    features = datasets.Features({"picture": datasets.Image(), "category": datasets.ClassLabel(names=["a", "b", "c"])})
    for split, n in (("train", n_train), ("test", n_test)):
        images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
        ds = datasets.Dataset.from_dict({"picture": images, "category": [int(v) for v in rng.integers(0, 3, n)]},
                                        features=features)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; asserts the PNG signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
