"""Where a cell's images come from: the clean test set, the released files (`--source official`:
robench.data.csets' .npy arrays, or robench.data.jpeg_csets' JPEG folders for ImageNet-C and
Tiny-ImageNet-C) or robench's own engine drawn by the protocol's chunk seeds (`--source
generated`, robench.corruptions.registry.generated_batches), and which frost photographs generated
frost uses. A test set is in memory (robench.data.Split) or streams (a robench.data.stream.ChunkedSplit:
image files, or a Hugging Face dataset's on-disk cache); `CellImages` reads either, chunk by chunk, the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from robench.corruptions.protocol import PROTOCOLS, check_protocol, default_protocol
from robench.corruptions.cbar import generated_bar_batches
from robench.corruptions.registry import generated_batches
from robench.data import csets, jpeg_csets, psets
from robench.data.download import data_dir
from robench.data.stream import ChunkedSplit, StreamedSplit
from robench.errors import RobenchError
from robench.eval.cell import Cell


def resolve_source(source: str, dataset: str, c_dir: str | None, benchmark: str = "c") -> tuple[str, Path | None]:
    """(official | generated, the released files' folder or None) for a --source choice (one of
    SOURCES, which EvalConfig.validate checks) in a benchmark (C-bar has no release: generated)."""
    if benchmark == "p":
        folder, release = psets.find(dataset, c_dir), psets.release_for(dataset)
    elif benchmark == "c":
        folder = csets.find(dataset, c_dir) or jpeg_csets.find(dataset, c_dir)
        release = csets.release_for(dataset) or jpeg_csets.release_for(dataset)
    else:
        folder = release = None
    if source == "official":
        if release is None:
            what = {"c": "corruption", "c-bar": "C-bar", "p": "perturbation"}[benchmark]
            raise RobenchError(f"{dataset} has no official {what} release; use --source generated")
        if folder is None:
            raise RobenchError(f"official {release.name} files not found (looked in {c_dir or data_dir() / release.folder}); "
                               f"run `robench data download {release.name}`, pass --c-dir, or use --source generated")
        return "official", folder
    if source == "auto" and folder is not None:
        return "official", folder
    return "generated", None


def resolve_protocol(requested: str, storage: bool, size: tuple[int, int], source: str, dataset: str,
                     echo: Callable[[str], None]) -> tuple[str, str, str]:
    """(protocol, storage step or "none", file tag) of an evaluation's corrupted cells.

    Released files were made by one generator and stored as it stored them. Generated cells use
    the protocol asked for, or (auto) the official one written for the images' size; a size no
    official protocol is written for gets robench's own size-scaled table, said out loud and
    recorded. The tag is empty for the dataset's own choice and names the protocol otherwise, so
    two protocols' cells never share an eval CSV."""
    if source == "official":
        release = csets.release_for(dataset) or jpeg_csets.release_for(dataset)
        if requested not in ("auto", release.protocol):
            raise RobenchError(f"the released {release.name} files were made with protocol {release.protocol}, not "
                               f"{requested}; use --source generated for --protocol {requested}")
        step = PROTOCOLS[release.protocol].storage
        if step and not storage:
            raise RobenchError(f"the released {release.name} files are stored as {step}; --no-storage needs "
                               f"--source generated (images before the storage step)")
        return release.protocol, step or "none", ""
    try:
        own = default_protocol(*size)
    except RobenchError:
        own = "scaled"
    if requested == "auto":
        if own == "scaled":
            echo(f"note: no official corruption protocol is written for {size[0]}x{size[1]} images; generated cells "
                 f"use robench's own size-scaled table (protocol scaled, recorded in the eval files)")
        protocol = own
    else:
        protocol = check_protocol(requested, *size)
    step = PROTOCOLS[protocol].storage
    applied = step if step and storage else "none"
    tag = "" if protocol == own else protocol
    if step and not storage:
        tag = f"{protocol}-nostorage"
    return protocol, applied, tag


def frost_source(frost: str, names: list[str], source: str, echo: Callable[[str], None]) -> str | None:
    """Which frost photographs the frost cells use: the released files were made with the
    official ones; generated frost uses what --frost chooses (auto: official when available)."""
    if "frost" not in names:
        return None
    if source == "official":
        return "official"
    from robench.corruptions.frost_textures import resolve_frost

    resolved = resolve_frost(frost)
    if frost == "auto" and resolved != "official":  # --frost procedural is a choice, not a fallback
        echo("warning: the official frost photographs are not available, so frost uses the procedural stand-in "
             "and its errors are not comparable to CIFAR-10-C (recorded in the eval files; --frost official "
             "says how to get them)")
    return resolved


def open_official(folder: Path, test, dataset: str, names: list[str], severities: list[int] | None = None):
    """The released C-set in `folder`, checked before any cell: its labels are the test set's and
    the requested corruptions' files are whole (.npy arrays), or the requested cell folders exist
    with the test set's classes (JPEG folders)."""
    if isinstance(test, StreamedSplit):
        official = jpeg_csets.ReleasedFolders(folder)
        official.check(test, names, severities or [1, 2, 3, 4, 5])
        return official
    official = csets.OfficialCSet(folder)
    n = len(test)
    if official.n < n or not torch.equal(official.labels()[:n], test.labels):
        raise RobenchError(f"the C-set in {folder} does not match the {dataset} test set (labels differ)")
    official.check(names)
    return official


def first_images(test, n: int) -> torch.Tensor:
    """The first `n` test images (a model's trial forward pass), without decoding a streamed set."""
    return test.head(n) if isinstance(test, ChunkedSplit) else test.images[:n]


def cell_images(test, share: slice, official, seed: int, batch_size: int, frost: str | None,
                device: torch.device | None = None, protocol: str | None = None,
                storage: bool = True, benchmark: str = "c") -> "CellImages":
    """The CellImages of this rank's `share` (whole CHUNK-image chunks) of `test`. Generated cells
    run on `device`: an in-memory share moves there once, a streamed one chunk by chunk."""
    n = len(test)
    if isinstance(test, ChunkedSplit):
        return CellImages(None, test.labels[share], official, seed, batch_size, frost, offset=share.start, n=n,
                          stream=test, device=device, protocol=protocol, storage=storage, benchmark=benchmark)
    images = test.images[share]
    if device is not None:
        images = images.to(device)
    return CellImages(images, test.labels[share], official, seed, batch_size, frost, offset=share.start, n=n,
                      protocol=protocol, storage=storage, benchmark=benchmark)


@dataclass
class CellImages:
    """The (images, labels) batches of any cell over test images [offset, offset + len(labels)) of
    a test set of `n` (one rank's share under torchrun; the whole set otherwise): `images` in
    memory, or read from `stream` (the whole streamed test set) in CHUNK-image chunks, the next
    decoded while the current one is evaluated. Generated chunks are seeded by their global
    position, hence `offset`; streamed chunks are corrupted on `device`."""

    images: torch.Tensor | None
    labels: torch.Tensor
    official: csets.OfficialCSet | jpeg_csets.ReleasedFolders | None
    seed: int
    batch_size: int
    frost: str | None
    offset: int = 0
    n: int | None = None
    stream: ChunkedSplit | None = None
    device: torch.device | None = None
    protocol: str | None = None  # of generated cells; None: the official one for the image size
    storage: bool = True  # apply the protocol's storage step to generated cells
    benchmark: str = "c"  # whose engine generates the cells: -C's (protocol) or C-bar's

    def batches(self, cell: Cell) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if cell.is_clean or self.official is not None:
            for start, images in self._chunks(cell):
                for at in range(0, images.shape[0], self.batch_size):
                    batch = images[at:at + self.batch_size]
                    yield batch, self.labels[start + at:start + at + batch.shape[0]]
            return
        for start, images in self._chunks(cell):
            if self.device is not None:
                images = images.to(self.device, non_blocking=True)
            if self.benchmark == "c-bar":
                generated = generated_bar_batches(images, *cell, self.seed, self.batch_size, offset=self.offset + start)
            else:
                generated = generated_batches(images, *cell, self.seed, self.batch_size, frost=self.frost or "auto",
                                              offset=self.offset + start, protocol=self.protocol, storage=self.storage)
            for at, batch in generated:
                yield batch, self.labels[start + at:start + at + batch.shape[0]]

    def _chunks(self, cell: Cell) -> Iterator[tuple[int, torch.Tensor]]:
        """(start within this share, images) of the cell's source before any generated corruption:
        the clean images, or the released cell's."""
        count = self.labels.shape[0]
        if self.stream is not None:
            stream = self.stream
            if not cell.is_clean and isinstance(self.official, jpeg_csets.ReleasedFolders):
                stream = self.official.cell(self.stream, *cell)
            for start, images in stream.chunks(self.offset, self.offset + count):
                yield start - self.offset, images
        elif cell.is_clean or self.official is None:
            yield 0, self.images
        else:
            total = self.n if self.n is not None else count
            yield 0, self.official.images(*cell)[:total][self.offset:self.offset + count]
