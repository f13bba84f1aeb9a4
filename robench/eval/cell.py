"""A cell of an evaluation: one (corruption, severity), the clean test set being the cell
("clean", 0).

Everything robench asks about cells is answered here, once: a cell's key in the eval CSV and how a
row is read back into a cell, the cells a --corruptions/--severities spec asks for, the protocol's
grids that mCE and the extra error average over, the order cells are listed in, and the rule for
"already done" that `robench eval`, the Python API and `robench sweep` share. Imports no torch.
"""

from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple

from robench.corruptions.benchmarks import CBAR, PERTURBATIONS
from robench.corruptions.protocol import CORRUPTIONS, EXTRA, SEVERITIES, STANDARD


class Cell(NamedTuple):
    """(corruption, severity); a plain tuple too, so `corruption, severity = cell` works."""

    corruption: str
    severity: int

    @classmethod
    def of(cls, row: Mapping) -> "Cell":
        """The cell of an eval-CSV row (or any mapping with those two columns)."""
        return cls(row["corruption"], int(row["severity"]))

    @property
    def is_clean(self) -> bool:
        return self == CLEAN

    @property
    def label(self) -> str:
        """How progress bars and messages name it: 'clean', 'fog s3'."""
        return "clean" if self.is_clean else f"{self.corruption} s{self.severity}"

    @property
    def key(self) -> str:
        """Its name inside files that hold one array per cell (the predictions .npz): 'fog_s3'."""
        return f"{self.corruption}_s{self.severity}"


CLEAN = Cell("clean", 0)


def grid(corruptions: Iterable[str], severities: Iterable[int] = SEVERITIES) -> list[Cell]:
    """Every (corruption, severity) of the given ones, corruption-major."""
    return [Cell(c, s) for c in corruptions for s in severities]


# What the leaderboard's figures average over: mCE the 15 standard corruptions at every severity,
# the extra error the 4 extra ones.
STANDARD_CELLS = tuple(grid(STANDARD))
EXTRA_CELLS = tuple(grid(EXTRA))


def requested(corruptions: Iterable[str], severities: Iterable[int]) -> list[Cell]:
    """The cells an evaluation computes for the corruptions and severities it was asked for (as
    protocol.parse_corruptions and parse_severities read the specs): clean first."""
    return [CLEAN] + grid(corruptions, severities)


# The listing order: clean, the -C corruptions, C-bar's, then -P's perturbations -C does not have.
_ORDER = (CLEAN.corruption,) + CORRUPTIONS + CBAR + tuple(p for p in PERTURBATIONS if p not in CORRUPTIONS)


def order(cell: Cell) -> tuple[int, int]:
    """Sort key of the listing order: clean, then each corruption's severities (unknown names last)."""
    return (_ORDER.index(cell.corruption) if cell.corruption in _ORDER else len(_ORDER), cell.severity)


def done(rows: Iterable[Mapping], frost: str | None) -> set[Cell]:
    """The cells that need no recomputing, given the eval-CSV rows of one identity (the same dataset,
    source, seed, images and model: robench.runfolder.cellstore keeps the rows of other identities
    out) and the frost photographs this evaluation's frost cells use: a frost cell computed with
    other photographs is not done."""
    return {Cell.of(r) for r in rows if r["corruption"] != "frost" or r.get("frost_textures") == frost}
