"""The released ImageNet-C and Tiny-ImageNet-C: JPEG files in `<root>/<corruption>/<severity>/<wnid>/`.

Each cell is the clean set's images under another root (same `<wnid>/<file name>` ids, hence the
same labels and order, and the same --subset), already at the protocol's size, read through the
same StreamedSplit. Opening a release checks, before any cell, that each requested cell folder
exists and holds exactly the clean set's classes; a missing file is an error when its chunk comes.

Downloads (Zenodo; `robench data download imagenet-c | tiny-imagenet-c`) are resumable, verified
and safely extracted by robench.data.download. ImageNet-C comes as five tars, one per group of
corruptions, each holding its corruptions' folders. Checksums: docs/data.md says where each was
confirmed; Tiny-ImageNet-C's md5 could not be confirmed, so only its download's completeness is checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from robench.data.download import data_dir, extract_tar, fetch, find_release
from robench.data.stream import StreamedSplit
from robench.errors import RobenchError


@dataclass(frozen=True)
class Archive:
    filename: str
    md5: str | None  # None: not confirmed from two sources (docs/data.md)
    corruptions: tuple[str, ...]  # the top folders it holds (empty: one folder named like the release)


@dataclass(frozen=True)
class JpegRelease:
    name: str
    dataset: str  # the clean dataset whose validation set it corrupts
    record: int  # Zenodo record
    folder: str  # where it lives in the data dir
    archives: tuple[Archive, ...]

    @property
    def protocol(self) -> str:
        """The generator table that made it (corruptions.protocol.PROTOCOLS): its own name."""
        return self.name

    def url(self, archive: Archive) -> str:
        return f"https://zenodo.org/records/{self.record}/files/{archive.filename}?download=1"


RELEASES = {r.name: r for r in (
    JpegRelease("imagenet-c", "imagenet", 2235448, "ImageNet-C", (
        Archive("noise.tar", "e80562d7f6c3f8834afb1ecf27252745", ("gaussian_noise", "shot_noise", "impulse_noise")),
        Archive("blur.tar", "2d8e81fdd8e07fef67b9334fa635e45c",
                ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur")),
        Archive("weather.tar", "33ffea4db4d93fe4a428c40a6ce0c25d", ("frost", "snow", "fog", "brightness")),
        Archive("digital.tar", "89157860d7b10d5797849337ca2e5c03",
                ("contrast", "elastic_transform", "pixelate", "jpeg_compression")),
        Archive("extra.tar", "d492dfba5fc162d8ec2c3cd8ee672984",
                ("speckle_noise", "spatter", "gaussian_blur", "saturate")),
    )),
    JpegRelease("tiny-imagenet-c", "tiny-imagenet", 2536630, "Tiny-ImageNet-C", (
        Archive("Tiny-ImageNet-C.tar", None, ()),
    )),
)}


def release_for(dataset: str) -> JpegRelease | None:
    return next((r for r in RELEASES.values() if r.dataset == dataset), None)


def download(name: str, groups: list[str] | None = None) -> Path:
    """Fetch (resumably), verify and extract a release (or some of ImageNet-C's tars, by their
    names without .tar) into the data dir; returns its folder."""
    release = RELEASES[name]
    root = data_dir() / release.folder
    chosen = [a for a in release.archives if groups is None or a.filename.removesuffix(".tar") in groups]
    if groups is not None and len(chosen) != len(groups):
        known = ", ".join(a.filename.removesuffix(".tar") for a in release.archives)
        raise RobenchError(f"unknown part of {name} in {', '.join(groups)}; choose from: {known}")
    for archive in chosen:
        if archive.corruptions:
            if all((root / c).is_dir() for c in archive.corruptions):
                continue
            path = fetch(release.url(archive), root / archive.filename, archive.md5, f"{name} {archive.filename}")
            extract_tar(path, root, archive.corruptions, archive.md5)
        else:
            if root.is_dir():
                continue
            path = fetch(release.url(archive), data_dir() / archive.filename, archive.md5, name)
            extract_tar(path, data_dir(), release.folder, archive.md5)
    return root


def find(dataset: str, c_dir: str | Path | None = None) -> Path | None:
    """The folder holding a released JPEG C-set for `dataset` (one with at least one
    `<corruption>/<severity>/` folder), or None."""
    release = release_for(dataset)
    if release is None:
        return None

    def holds(root: Path) -> bool:
        return root.is_dir() and any(Path(e.path, "1").is_dir() for e in os.scandir(root) if e.is_dir())

    return find_release(release.folder, c_dir, holds)


class ReleasedFolders:
    """One released JPEG C-set: the cells of a clean StreamedSplit under `<root>/<corruption>/<severity>`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, corruption: str, severity: int) -> Path:
        return self.root / corruption / str(severity)

    def check(self, clean: StreamedSplit, corruptions: list[str], severities: list[int]) -> None:
        """Each requested cell folder exists and its class folders are the clean set's classes
        (so labels, which come from the clean set's ids, mean the same)."""
        if not isinstance(clean, StreamedSplit):
            raise RobenchError(f"the released C-set in {self.root} holds image files; its clean set must be a "
                               f"streamed image dataset (imagenet, tiny-imagenet)")
        for corruption in corruptions:
            for severity in severities:
                folder = self.folder(corruption, severity)
                if not folder.is_dir():
                    raise RobenchError(f"missing {folder}; download this part of the release (robench data download) "
                                       f"or choose other --corruptions/--severities")
                classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
                if classes != sorted(clean.classes):
                    extra = sorted(set(classes) ^ set(clean.classes))
                    raise RobenchError(f"{folder} holds {len(classes)} class folders, the clean set {len(clean.classes)} "
                                       f"(first difference: {extra[0] if extra else '?'}); labels would not match")

    def cell(self, clean: StreamedSplit, corruption: str, severity: int) -> StreamedSplit:
        """The cell's images: the clean ids under its folder, stored at the protocol's size."""
        return clean.rerooted(self.folder(corruption, severity), preprocess="none",
                              name=str(self.folder(corruption, severity)))
