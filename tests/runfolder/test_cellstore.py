"""CellStore, the eval CSV as a store of finished cells: a cell is done only for the identity it was
computed with, and a frost cell only with the frost textures it was computed with."""

import json

from robench.runfolder.cellstore import CellStore
from robench.runfolder.files import SETTING_DEFAULTS, read_eval_csv

IDENTITY = dict(dataset="shapes10", source="generated", seed=0, n=10, checkpoint_sha256="ab" * 32, **SETTING_DEFAULTS)
CELLS = [("clean", 0), ("frost", 1), ("frost", 2), ("fog", 1)]


def row(corruption, severity, frost=""):
    return dict(corruption=corruption, severity=severity, n=10, correct=7, error=30.0, dataset="shapes10",
                source="generated", seed=0, frost_textures=frost, nll=1.0, brier=0.5, ece=0.1, rms_ce="nan")


def computed(store, frost):
    """A whole evaluation: begin, commit every cell to do, finish; returns the cells it computed."""
    todo = store.begin(CELLS, frost, force=False, record={})
    for c, s in todo:
        store.commit(row(c, s, frost if c == "frost" else ""))
    store.finish()
    return todo


def test_frost_cells_of_other_textures_are_not_done(tmp_path):
    path = tmp_path / "eval" / "shapes10-generated.csv"
    assert computed(CellStore(path, IDENTITY), "procedural") == CELLS
    # The same textures: everything is done.
    assert CellStore(path, IDENTITY).begin(CELLS, "procedural", force=False, record={}) == []
    # Other textures: the frost cells (and only they) are to do, then replace the old frost rows.
    assert computed(CellStore(path, IDENTITY), "official") == [("frost", 1), ("frost", 2)]
    rows = {(r["corruption"], int(r["severity"])): r["frost_textures"] for r in read_eval_csv(path)}
    assert rows == {("clean", 0): "", ("frost", 1): "official", ("frost", 2): "official", ("fog", 1): ""}
    assert CellStore(path, IDENTITY).begin(CELLS, "procedural", force=False, record={}) == [("frost", 1), ("frost", 2)]


def test_force_and_another_identity_redo_every_cell(tmp_path):
    path = tmp_path / "eval" / "shapes10-generated.csv"
    computed(CellStore(path, IDENTITY), "procedural")
    assert CellStore(path, IDENTITY).begin(CELLS, "procedural", force=True, record={}) == CELLS
    assert CellStore(path, {**IDENTITY, "seed": 1}).begin(CELLS, "procedural", force=False, record={}) == CELLS


def test_a_json_from_before_the_setting_columns_means_their_defaults(tmp_path):
    """Files written before benchmark/protocol/storage/subset were recorded hold cells of the
    defaults (c, cifar10-c, none, all): they stay done for that setting and are not for another."""
    path = tmp_path / "eval" / "shapes10-generated.csv"
    computed(CellStore(path, IDENTITY), "procedural")
    json_path = path.with_suffix(".json")
    meta = json.loads(json_path.read_text())
    for key in SETTING_DEFAULTS:
        del meta[key]
    json_path.write_text(json.dumps(meta))
    assert CellStore(path, IDENTITY).todo(CELLS, "procedural") == []
    assert CellStore(path, {**IDENTITY, "protocol": "scaled"}).todo(CELLS, "procedural") == CELLS
    assert CellStore(path, {**IDENTITY, "storage": "jpeg85"}).todo(CELLS, "procedural") == CELLS
