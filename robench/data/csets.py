"""The official corruption releases (CIFAR-10-C, CIFAR-100-C) in their released layout.

`<root>/CIFAR-10-C/<corruption>.npy`: uint8 (50000, 32, 32, 3), rows [(s-1)*10000, s*10000) hold
severity s in test-set order; `labels.npy`: uint8 (50000,), the test labels tiled 5 times.
Files are memory-mapped and read one severity slice at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from robench.corruptions.cbar import generated_bar_batches
from robench.corruptions.protocol import CHUNK, SEVERITIES
from robench.corruptions.registry import generated_batches
from robench.data.download import data_dir, extract_tar, fetch, find_release
from robench.errors import RobenchError


@dataclass(frozen=True)
class Release:
    name: str  # e.g. cifar10-c
    dataset: str  # the clean dataset whose test set it corrupts
    record: int  # Zenodo record
    filename: str
    md5: str
    size: int | None  # bytes, when known; lets a resumed download be checked before hashing
    protocol: str = "cifar10-c"  # the generator table that made it (corruptions.protocol.PROTOCOLS)

    @property
    def folder(self) -> str:
        return self.filename.removesuffix(".tar")

    @property
    def url(self) -> str:
        return f"https://zenodo.org/records/{self.record}/files/{self.filename}?download=1"


RELEASES = {
    r.name: r
    for r in (
        Release("cifar10-c", "cifar10", 2535967, "CIFAR-10-C.tar", "56bf5dcef84df0e2308c6dcbcbbd8499", 2_918_471_680),
        Release("cifar100-c", "cifar100", 3555552, "CIFAR-100-C.tar", "11f0ed0f1191edbf9fa23466ae6021d3", None),
    )
}


def release_for(dataset: str) -> Release | None:
    return next((r for r in RELEASES.values() if r.dataset == dataset), None)


def download(name: str) -> Path:
    """Fetch (resumably), verify and extract a release into the data dir; returns its folder."""
    if name not in RELEASES:
        raise RobenchError(f"unknown corruption release '{name}'; choose one of: {', '.join(RELEASES)}")
    release = RELEASES[name]
    root = data_dir()
    if (root / release.folder / "labels.npy").exists():
        return root / release.folder
    archive = fetch(release.url, root / release.filename, release.md5, name, size=release.size)
    return extract_tar(archive, root, release.folder, release.md5)


def find(dataset: str, c_dir: str | Path | None = None) -> Path | None:
    """The folder holding the official C-set for `dataset`, or None when it is not on disk."""
    release = release_for(dataset)
    if release is None:
        return None
    return find_release(release.folder, c_dir, lambda root: (root / "labels.npy").exists())


class OfficialCSet:
    """Reads one (corruption, severity) slice of a released C-set as uint8 (N, 3, H, W)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.labels_all = self._load("labels")
        if self.labels_all.ndim != 1 or self.labels_all.shape[0] % len(SEVERITIES):
            raise RobenchError(f"{self.folder / 'labels.npy'} has shape {self.labels_all.shape}, "
                               f"expected (5*N,); re-download the C-set")
        self.n = self.labels_all.shape[0] // len(SEVERITIES)

    def _load(self, name: str) -> np.ndarray:
        path = self.folder / f"{name}.npy"
        if not path.exists():
            raise RobenchError(f"missing {path}; run `robench data download` for this C-set or pass --c-dir")
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            raise RobenchError(f"cannot read {path} ({e}); the file is truncated or not .npy, re-download it") from None

    def labels(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.labels_all[: self.n], dtype=np.int64))

    def check(self, corruptions: list[str]) -> None:
        """Open each corruption's file (header only, memory-mapped) so that a missing, truncated or
        wrongly shaped one is reported before an evaluation starts, not when its cell comes."""
        for corruption in corruptions:
            self._array(corruption)

    def images(self, corruption: str, severity: int) -> torch.Tensor:
        array = self._array(corruption)
        rows = array[(severity - 1) * self.n : severity * self.n]
        return torch.from_numpy(np.array(rows)).permute(0, 3, 1, 2).contiguous()  # copy out of the memmap

    def _array(self, corruption: str) -> np.ndarray:
        array = self._load(corruption)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[0] != len(SEVERITIES) * self.n or array.shape[3] != 3:
            raise RobenchError(
                f"{self.folder / corruption}.npy has {array.dtype} {array.shape}, expected uint8 "
                f"({len(SEVERITIES) * self.n}, H, W, 3); re-download the C-set"
            )
        return array


def write_generated(images: torch.Tensor, labels: torch.Tensor, out: Path, corruptions: list[str], seed: int,
                    on_cell=None, frost: str = "auto", protocol: str | None = None, storage: bool = True,
                    benchmark: str = "c") -> Path:
    """Write a C-set in the official layout from robench's own corruptions (-C, or with
    benchmark="c-bar" CIFAR-10-C-bar's, which CIFAR-100-C-bar shares).

    `<out>/<corruption>.npy` uint8 (5N, H, W, 3) severity-major and `labels.npy` (uint8 when the
    labels fit, the test labels tiled 5 times). The corruptions are drawn exactly as `robench eval
    --source generated` draws them (same chunk-keyed seeds), so evaluating these files gives the
    same numbers (with the same `frost` textures). Resumable per file (`fill_npy`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n, _, h, w = images.shape
    label_dtype = np.uint8 if int(labels.max()) < 256 else np.int64
    _save_atomic(out / "labels.npy", np.tile(labels.numpy().astype(label_dtype), len(SEVERITIES)))

    def draw(name: str, severity: int):
        if benchmark == "c-bar":
            return generated_bar_batches(images, name, severity, seed, CHUNK)
        return generated_batches(images, name, severity, seed, CHUNK, frost=frost, protocol=protocol, storage=storage)

    for name in corruptions:
        def fill(array: np.ndarray) -> None:
            for severity in SEVERITIES:
                for start, batch in draw(name, severity):
                    rows = slice((severity - 1) * n + start, (severity - 1) * n + start + batch.shape[0])
                    array[rows] = batch.permute(0, 2, 3, 1).cpu().numpy()
                if on_cell:
                    on_cell(name, severity)

        fill_npy(out / f"{name}.npy", (len(SEVERITIES) * n, h, w, 3), fill)  # on_cell: the cells it draws
    return out


def fill_npy(final: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> bool:
    """Write the uint8 array `final` of `shape` through `fill(memmap)` into a hidden temporary file,
    renamed when complete; a finished file already there (right dtype and shape: only complete
    files are ever renamed in) is kept. Returns whether it wrote."""
    if _complete(final, shape):
        return False
    tmp = final.with_name(f".{final.name}.partial")
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        fill(array)
        array.flush()
        del array  # close the memmap before the rename
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _complete(path: Path, shape: tuple[int, ...]) -> bool:
    """Whether `path` is a finished uint8 array of `shape` (only complete files are ever renamed in)."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return array.dtype == np.uint8 and array.shape == shape
