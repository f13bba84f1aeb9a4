"""Where a cell's images come from: the clean test set, the released files (`--source official`,
robench.data.csets) or robench's own engine drawn by the protocol's chunk seeds (`--source
generated`, robench.corruptions.registry.generated_batches), and which frost photographs generated
frost uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from robench.corruptions.protocol import PROTOCOLS, check_protocol, default_protocol
from robench.corruptions.registry import generated_batches
from robench.data import csets, psets
from robench.data.download import data_dir
from robench.errors import RobenchError
from robench.eval.cell import Cell


def resolve_source(source: str, dataset: str, c_dir: str | None, benchmark: str = "c") -> tuple[str, Path | None]:
    """(official | generated, the released files' folder or None) for a --source choice (one of
    SOURCES, which EvalConfig.validate checks) in a benchmark (C-bar has no release: generated)."""
    sets = psets if benchmark == "p" else csets
    folder = sets.find(dataset, c_dir) if benchmark != "c-bar" else None
    release = sets.release_for(dataset) if benchmark != "c-bar" else None
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
        release = csets.release_for(dataset)
        if requested not in ("auto", release.protocol):
            raise RobenchError(f"the released {release.name} files were made with protocol {release.protocol}, not "
                               f"{requested}; use --source generated for --protocol {requested}")
        return release.protocol, PROTOCOLS[release.protocol].storage or "none", ""
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


def open_official(folder: Path, test, dataset: str, names: list[str]) -> csets.OfficialCSet:
    """The released C-set in `folder`, checked before any cell: its labels are the test set's and
    the requested corruptions' files are whole."""
    official = csets.OfficialCSet(folder)
    n = len(test)
    if official.n < n or not torch.equal(official.labels()[:n], test.labels):
        raise RobenchError(f"the C-set in {folder} does not match the {dataset} test set (labels differ)")
    official.check(names)
    return official


@dataclass
class CellImages:
    """The (images, labels) batches of any cell over `images`: test images [offset, offset + len) of
    a test set of `n` (one rank's share under torchrun; the whole set otherwise). Generated chunks
    are seeded by their global position, hence `offset`."""

    images: torch.Tensor
    labels: torch.Tensor
    official: csets.OfficialCSet | None
    seed: int
    batch_size: int
    frost: str | None
    offset: int = 0
    n: int | None = None
    protocol: str | None = None
    storage: bool = True

    def batches(self, cell: Cell) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = self.labels.shape[0]
        if cell.is_clean or self.official is not None:
            if cell.is_clean:
                source = self.images
            else:
                total = self.n if self.n is not None else count
                source = self.official.images(*cell)[:total][self.offset:self.offset + count]
            for start in range(0, count, self.batch_size):
                yield source[start:start + self.batch_size], self.labels[start:start + self.batch_size]
        else:
            for start, batch in generated_batches(self.images, *cell, self.seed, self.batch_size,
                                                  frost=self.frost or "auto", offset=self.offset,
                                                  protocol=self.protocol, storage=self.storage):
                yield batch, self.labels[start:start + batch.shape[0]]
