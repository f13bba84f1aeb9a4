"""The official perturbation releases (CIFAR-10-P, CIFAR-100-P) in their released layout (docs/perturbations.md).

`<root>/CIFAR-10-P/<perturbation>.npy`: uint8 (10000, T, 32, 32, 3), sequence i starting from test
image i (T = 31; 16 for translate, 21 for motion_blur). The release also holds the validation
perturbations and the harder noise files (`gaussian_noise_2.npy`, `_3`, ...); the benchmark reads
only the ten of `perturbations.PERTURBATIONS`. The test labels are not needed: the stability
metrics compare a model's predictions with each other, not with labels. Files are memory-mapped
and read a chunk of sequences at a time.

`write_generated` writes the same layout from robench's own sequences (resumable per file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from robench.corruptions.perturbations import FRAMES, PERTURBATIONS, SIZE, generated_sequences
from robench.data.csets import fill_npy
from robench.data.download import data_dir, extract_tar, fetch, find_release
from robench.errors import RobenchError


@dataclass(frozen=True)
class PRelease:
    name: str  # e.g. cifar10-p
    dataset: str  # the clean dataset whose test set the sequences start from
    folder: str  # the folder the archive (or the manual download) holds
    url: str | None  # a checksummed archive, when one exists
    md5: str | None
    size: int | None
    manual: str  # where to get it by hand


RELEASES = {
    r.name: r
    for r in (
        # Zenodo record 2535967 (with CIFAR-10-C); md5 as published by independent loaders (unverified here).
        PRelease("cifar10-p", "cifar10", "CIFAR-10-P", "https://zenodo.org/records/2535967/files/CIFAR-10-P.tar?download=1",
                 "125d6775afc5846ea84584d7524dedff", None,
                 "https://zenodo.org/records/2535967 (CIFAR-10-P.tar)"),
        # Only a Google Drive folder (the hendrycks/robustness README): no archive, no checksum.
        PRelease("cifar100-p", "cifar100", "CIFAR-100-P", None, None, None,
                 "https://drive.google.com/drive/folders/1Tpssw4Vn6X_4hmIW8KK5LzkKCZpAaae8"),
    )
}


def release_for(dataset: str) -> PRelease | None:
    return next((r for r in RELEASES.values() if r.dataset == dataset), None)


def download(name: str) -> Path:
    """Fetch (resumably), verify and extract a P-set into the data dir; returns its folder."""
    if name not in RELEASES:
        raise RobenchError(f"unknown perturbation release '{name}'; choose one of: {', '.join(RELEASES)}")
    release = RELEASES[name]
    root = data_dir()
    target = root / release.folder
    if all((target / f"{p}.npy").exists() for p in PERTURBATIONS):
        return target
    if release.url is None:
        raise RobenchError(f"{name} has no checksummed archive to download; get the {release.folder} folder from "
                           f"{release.manual} and put it at {target} (or pass its folder with --p-dir)")
    archive = fetch(release.url, root / f"{release.folder}.tar", release.md5, name, size=release.size)
    return extract_tar(archive, root, release.folder, release.md5)


def find(dataset: str, p_dir: str | Path | None = None) -> Path | None:
    """The folder holding the official P-set for `dataset`, or None when it is not on disk."""
    release = release_for(dataset)
    return find_release(release.folder if release else None, p_dir,
                        lambda root: (root / f"{PERTURBATIONS[0]}.npy").exists())


class OfficialPSet:
    """Reads chunks of sequences of a released (or generated) P-set as uint8 (B, T, 3, 32, 32)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def array(self, perturbation: str) -> np.ndarray:
        """The memory-mapped file, checked: uint8 (N, T, 32, 32, 3) with the official T."""
        path = self.folder / f"{perturbation}.npy"
        if not path.exists():
            raise RobenchError(f"missing {path}; run `robench data download` for this P-set or pass --p-dir")
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            raise RobenchError(f"cannot read {path} ({e}); the file is truncated or not .npy, re-download it") from None
        expected = (FRAMES.get(perturbation), SIZE, SIZE, 3)
        if array.dtype != np.uint8 or array.ndim != 5 or array.shape[1:] != expected:
            raise RobenchError(f"{path} has {array.dtype} {array.shape}, expected uint8 (N, {expected[0]}, {SIZE}, "
                               f"{SIZE}, 3); re-download the P-set")
        return array

    def check(self, perturbations: Sequence[str]) -> int:
        """Open every file (headers only) before an evaluation starts; returns the number of sequences."""
        counts = {p: self.array(p).shape[0] for p in perturbations}
        if len(set(counts.values())) > 1:
            raise RobenchError(f"the P-set in {self.folder} has files of different lengths {counts}; re-download it")
        return next(iter(counts.values()), 0)

    def sequences(self, perturbation: str, batch: int, start: int = 0,
                  stop: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """(index, uint8 (B, T, 3, 32, 32)) over sequences [start, stop), `batch` at a time."""
        array = self.array(perturbation)
        stop = array.shape[0] if stop is None else min(stop, array.shape[0])
        for first in range(start, stop, batch):
            rows = np.array(array[first:min(first + batch, stop)])  # copy out of the memmap
            yield first, torch.from_numpy(rows).permute(0, 1, 4, 2, 3).contiguous()


def write_generated(images: torch.Tensor, out: Path, perturbations: Sequence[str], seed: int,
                    on_file: Callable[[str, int], None] | None = None, batch: int | None = None) -> Path:
    """Write a P-set in the released layout from robench's sequences of `images` (uint8 (N, 3, 32, 32)).

    `<out>/<perturbation>.npy` uint8 (N, T, 32, 32, 3), drawn exactly as an evaluation with
    generated sequences draws them (the same per-sequence seeds). Each file is filled through a
    temporary memmap and renamed when complete; a file already there with the right shape is
    kept, so an interrupted run resumes at the first missing perturbation."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = images.shape[0]
    kwargs = {} if batch is None else {"batch": batch}
    for name in perturbations:
        def fill(array: np.ndarray) -> None:
            for start, sequences in generated_sequences(images, name, seed, **kwargs):
                array[start:start + sequences.shape[0]] = sequences.permute(0, 1, 3, 4, 2).cpu().numpy()

        fill_npy(out / f"{name}.npy", (n, FRAMES[name], SIZE, SIZE, 3), fill)
        if on_file:
            on_file(name, n)
    return out
