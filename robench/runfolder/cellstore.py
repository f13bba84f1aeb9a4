"""The eval CSV as a store of finished cells, so that long evaluations resume and may overlap.

    eval/<dataset>-<source>.csv    one row per finished cell (files.EVAL_FIELDS)
    eval/<dataset>-<source>.json   whose cells the CSV holds, and every evaluation that wrote there
    eval/.<dataset>-<source>.csv.lock   taken while either file is read and rewritten

A cell is committed the moment it is counted: under the lock the CSV is read, the row added (or
put in place of the same cell) and the file rewritten atomically and fsynced, so a kill loses at
most the cell in progress and two evaluations of one run never lose each other's cells.

The CSV holds the cells of one *identity* (IDENTITY): dataset, source, seed, number of images,
benchmark, protocol, storage step, subset and the SHA-256 of the checkpoint they were computed with
(recorded in the .json). A cell is done when a
row of the same identity holds it (a frost cell also with the same frost textures); an evaluation
of another identity (a retrained checkpoint, another seed or --limit) drops the rows of the old
one, because a file mixing them could not be ranked. The .json keeps the list of evaluations
(what each computed, skipped, when, where), not only the last one.

Importing this module imports no torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path

from robench.eval.cell import Cell, done
from robench.runfolder.files import (EVAL_FIELDS, SETTING_DEFAULTS, SETTING_FIELDS, atomic_write_csv, cannot_write,
                                     eval_json_path, eval_lock_path, read_eval_csv, sort_cells, write_json)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; concurrent evals of one run are unsafe there
    fcntl = None

IDENTITY = ("dataset", "source", "seed", "n", "checkpoint_sha256", *SETTING_FIELDS)


@contextlib.contextmanager
def locked(csv_path: Path):
    """An exclusive lock on the store of `csv_path` (a lock file beside it, since the CSV itself is
    replaced by rename on every commit); blocks until the other holder is done."""
    lock = eval_lock_path(csv_path)
    try:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise cannot_write(csv_path, e) from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class CellStore:
    """The finished cells of one identity in one eval CSV (see the module's docstring)."""

    def __init__(self, csv_path: Path, identity: dict, fields: list[str] = EVAL_FIELDS):
        assert set(identity) == set(IDENTITY), identity
        self.path, self.identity, self.fields = Path(csv_path), identity, fields
        self.json_path = eval_json_path(self.path)
        self.entry_id = uuid.uuid4().hex[:12]

    # Both helpers below run under the lock.
    def _load(self) -> tuple[list[dict], dict]:
        """(rows of this identity, the .json); rows of another identity are left out."""
        meta = {}
        if self.json_path.exists():
            try:
                meta = json.loads(self.json_path.read_text())
            except (ValueError, UnicodeDecodeError):
                meta = {}  # a damaged .json says nothing about the cells: they are recomputed
        rows = read_eval_csv(self.path) if self.path.exists() else []
        # A .json written before a setting was recorded had that setting's old default.
        if any(meta.get(k, SETTING_DEFAULTS.get(k)) != v for k, v in self.identity.items()):
            rows = []
        for row in rows:  # rows written before the setting columns existed get them when rewritten
            for k in SETTING_FIELDS:
                row[k] = row.get(k) or self.identity[k]
        return rows, meta

    def _save(self, rows: list[dict] | None, meta: dict) -> None:
        """The .json first: the CSV's rows are never newer than the identity that describes them."""
        write_json(self.json_path, {**meta, **self.identity})
        if rows is not None:
            atomic_write_csv(self.path, self.fields, sort_cells(rows))

    def begin(self, cells: list[Cell], frost: str | None, force: bool, record: dict) -> list[Cell]:
        """Record this evaluation in the .json and return the cells of `cells` still to compute (all
        of them with `force`). Fails with a one-line error before any work if the folder is not
        writable."""
        if self.path.exists():  # a damaged CSV is refused before the lock file is made (nothing written)
            read_eval_csv(self.path)
        with locked(self.path):
            rows, meta = self._load()
            on_disk = read_eval_csv(self.path) if self.path.exists() else []
            todo = _not_done(cells, rows, frost, force)
            entry = {"id": self.entry_id, **record, "started": _now(), "finished": None,
                     "computed": 0, "skipped": len(cells) - len(todo)}
            meta["evaluations"] = meta.get("evaluations", []) + [entry]
            self._save(rows if len(rows) != len(on_disk) else None, meta)
        return todo

    def todo(self, cells: list[Cell], frost: str | None, force: bool = False) -> list[Cell]:
        """The cells of `cells` not yet done for this identity (robench.eval.cell.done), recording
        nothing: what `robench sweep` asks to know whether a run needs evaluating."""
        # No lock: a query writes nothing, and the files are only ever replaced whole (by rename).
        rows = self._load()[0] if self.path.exists() else []
        return _not_done(cells, rows, frost, force)

    def commit(self, row: dict) -> None:
        """Add one finished cell (replacing the same cell of this identity)."""
        with locked(self.path):
            rows, meta = self._load()
            rows = [r for r in rows if Cell.of(r) != Cell.of(row)] + [row]
            for entry in meta.get("evaluations", []):
                if entry.get("id") == self.entry_id:
                    entry["computed"] += 1
            self._save(rows, meta)

    def finish(self, **facts) -> None:
        """Complete this evaluation's entry in the .json (seconds, images per second, ...)."""
        with locked(self.path):
            _, meta = self._load()
            for entry in meta.get("evaluations", []):
                if entry.get("id") == self.entry_id:
                    entry.update(facts, finished=_now())
            self._save(None, meta)


def _not_done(cells: list[Cell], rows: list[dict], frost: str | None, force: bool) -> list[Cell]:
    """The cells of `cells` that `rows` (this identity's) do not hold as done; all of them with `force`."""
    if force:
        return list(cells)
    finished = done(rows, frost)
    return [c for c in cells if c not in finished]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

