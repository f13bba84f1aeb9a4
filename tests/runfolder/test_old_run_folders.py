"""Run folders written by the code before the package restructuring (commit 406954a) still
evaluate, resume and report with this code: the files of a run folder are byte-compatible.

The fixture (fixtures/written-by-406954a/, see its README.md) was made by the old CLI: a finished
run evaluated on 7 generated cells (old-run), the same run stopped by SIGINT mid-epoch 2 (old-stopped),
and old-run's checkpoint evaluated as a model robench did not train (old-external). Every test
works on a copy in tmp_path; the absolute /tmp paths recorded inside the files are never used.
"""

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robench.cli import app
from robench.runfolder.files import SETTING_DEFAULTS, SETTING_FIELDS

FIXTURE = Path(__file__).parent / "fixtures" / "written-by-406954a"
CSV_NAME, JSON_NAME = "shapes10-generated.csv", "shapes10-generated.json"
# What the old CLI was given (README.md of the fixture); the fixture was made with one torch thread.
EVAL = ["--source", "generated", "--device", "cpu", "--frost", "procedural"]
OLD_CELLS = ["--corruptions", "gaussian_noise,frost,contrast", "--severities", "1,3"]
EXTERNAL = ["--dataset", "shapes10", "--limit", "200", "--corruptions", "gaussian_noise,contrast", "--severities", "2",
            "--source", "generated", "--device", "cpu"]
CALIBRATION = ["nll", "brier", "ece", "rms_ce"]

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")  # as the fixture was made: bit-identical training sums


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(FIXTURE, out, symlinks=True)
    (out / "README.md").unlink()
    (out / "stop_mid_epoch.py").unlink()
    return out


def robench(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def by_cell(table: list[dict]) -> dict:
    return {(r["corruption"], int(r["severity"])): r for r in table}


def old_columns(csv_bytes: bytes) -> bytes:
    """An eval CSV without the setting columns (the last ones), as the old code wrote it."""
    lines = csv_bytes.decode().splitlines(keepends=True)
    return b"".join(line.rsplit(",", len(SETTING_FIELDS))[0].encode() + b"\r\n" * line.endswith("\r\n")
                    + b"\n" * (line.endswith("\n") and not line.endswith("\r\n")) for line in lines)


def close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-6 + 1e-12


def test_the_fixture_is_what_the_old_code_wrote():
    """The fixture's own consistency: its eval .json names the checkpoint beside it, and its CSV has
    the old header. (If this fails the fixture was edited, not the code.)"""
    run = FIXTURE / "old-run"
    meta = json.loads((run / "eval" / JSON_NAME).read_text())
    assert meta["checkpoint_sha256"] == hashlib.sha256((run / "checkpoint.pt").read_bytes()).hexdigest()
    header = (run / "eval" / CSV_NAME).read_text().splitlines()[0]
    assert header == "corruption,severity,n,correct,error,dataset,source,seed,frost_textures,nll,brier,ece,rms_ce"
    assert not (FIXTURE / "old-stopped" / "run.json").exists()


def test_eval_of_the_same_cells_computes_nothing_and_keeps_the_csv(folder):
    run = folder / "old-run"
    csv_path, json_path = run / "eval" / CSV_NAME, run / "eval" / JSON_NAME
    before, meta_before = csv_path.read_bytes(), json.loads(json_path.read_text())
    out = robench("eval", run, *OLD_CELLS, *EVAL)
    assert "7 cells already done are skipped" in out and "(0 cells computed" in out
    assert csv_path.read_bytes() == before
    meta = json.loads(json_path.read_text())
    for key in ("dataset", "source", "seed", "n", "checkpoint_sha256"):  # the identity the old code recorded
        assert meta[key] == meta_before[key], key
    assert meta["evaluations"][:-1] == meta_before["evaluations"]  # the old history is kept, one entry added
    assert meta["evaluations"][-1]["computed"] == 0 and meta["evaluations"][-1]["skipped"] == 7


def test_eval_of_one_more_cell_adds_one_row_and_keeps_the_old_rows(folder):
    run = folder / "old-run"
    csv_path = run / "eval" / CSV_NAME
    old_lines = csv_path.read_text().splitlines()
    out = robench("eval", run, "--corruptions", "contrast", "--severities", "5", *EVAL)
    assert "(1 cells computed" in out
    new_lines = csv_path.read_text().splitlines()
    assert len(new_lines) == len(old_lines) + 1
    # The rewrite adds the setting columns, holding what the old rows were measured with (the
    # defaults); every old column keeps its bytes, in the same order.
    assert new_lines[0] == old_lines[0] + "," + ",".join(SETTING_FIELDS)
    width = len(old_lines[0].split(","))
    cut = [",".join(line.split(",")[:width]) for line in new_lines[1:]]
    added = [line for line in cut if line not in old_lines]
    assert len(added) == 1 and added[0].startswith("contrast,5,200,")
    assert [line for line in cut if line in old_lines] == old_lines[1:]
    assert {line.split(",", width)[width] for line in new_lines[1:]} == {",".join(SETTING_DEFAULTS.values())}


def test_eval_force_reproduces_the_old_numbers(folder):
    run = folder / "old-run"
    csv_path = run / "eval" / CSV_NAME
    old = by_cell(rows(csv_path))
    out = robench("eval", run, "--corruptions", "frost,gaussian_noise", "--severities", "3", "--force", *EVAL)
    assert "(3 cells computed" in out
    new = by_cell(rows(csv_path))
    assert new.keys() == old.keys()
    for cell in [("clean", 0), ("frost", 3), ("gaussian_noise", 3)]:
        for column in ("n", "correct", "error", "dataset", "source", "seed", "frost_textures"):
            assert new[cell][column] == old[cell][column], (cell, column)
        for column in CALIBRATION:
            assert close(new[cell][column], old[cell][column]), (cell, column, new[cell][column], old[cell][column])
    assert not math.isnan(float(old[("clean", 0)]["rms_ce"]))  # 200 images: every calibration column is a number


def test_external_model_folder_is_reevaluated_to_the_same_csv_and_fingerprint(folder):
    """An external model's cells are keyed by how it was built, checkpoint path included (old and new
    code alike), so in a copy they are recomputed: the CSV must come out byte-identical and the new
    fingerprint must be the old code's formula applied to the old run.json with the path moved."""
    ext, checkpoint = folder / "old-external", folder / "old-run" / "checkpoint.pt"
    old_source = json.loads((ext / "run.json").read_text())["source"]
    old_meta = json.loads((ext / "eval" / JSON_NAME).read_text())

    def fingerprint(source: dict) -> str:  # robench 406954a, evaluate.model_fingerprint
        options = source["options"]
        description = {k: v for k, v in source.items() if k != "options"}
        return hashlib.sha256(json.dumps([[description], options], sort_keys=True, default=str).encode()).hexdigest()

    assert fingerprint(old_source) == old_meta["checkpoint_sha256"]
    before = (ext / "eval" / CSV_NAME).read_bytes()
    robench("eval", "small-cnn", "--checkpoint", checkpoint, *EXTERNAL, "--out-dir", folder, "--name", "old-external")
    after = (ext / "eval" / CSV_NAME).read_bytes()
    assert old_columns(after) == before  # the same numbers, with the setting columns added
    assert all(line.endswith(",".join(SETTING_DEFAULTS.values())) for line in after.decode().splitlines()[1:])
    moved = json.loads(json.dumps(old_source).replace(old_source["checkpoint"], str(checkpoint.resolve()))
                       .replace(old_source["options"]["checkpoint"], str(checkpoint)))
    assert json.loads((ext / "eval" / JSON_NAME).read_text())["checkpoint_sha256"] == fingerprint(moved)
    # ... so the same command again skips every cell
    out = robench("eval", "small-cnn", "--checkpoint", checkpoint, *EXTERNAL, "--out-dir", folder, "--name",
                  "old-external")
    assert "3 cells already done are skipped" in out and (ext / "eval" / CSV_NAME).read_bytes() == after


def test_resume_continues_the_old_mid_epoch_checkpoint_to_the_old_finished_run(folder):
    stopped, finished = folder / "old-stopped", folder / "old-run"
    state = torch.load(stopped / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert (state["epoch"], state["position"]) == (1, 3)
    result = runner.invoke(app, ["train", "--resume", str(stopped), "--epochs", "3"])
    assert result.exit_code == 2 and "cannot resume" in result.stderr  # a resumed run keeps its config
    out = robench("train", "--resume", stopped)
    assert "at epoch 2, step 3/8" in out
    final = torch.load(stopped / "checkpoint.pt", map_location="cpu", weights_only=True)
    expected = torch.load(finished / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert final["state_dict"].keys() == expected["state_dict"].keys()
    for key, value in expected["state_dict"].items():  # the old run never stopped, bit for bit
        assert torch.equal(final["state_dict"][key], value), key
    untimed = lambda table: [{k: v for k, v in r.items() if k not in ("images_per_s", "seconds")} for r in table]  # noqa: E731
    assert untimed(rows(stopped / "metrics.csv")) == untimed(rows(finished / "metrics.csv"))
    assert json.loads((stopped / "run.json").read_text())["clean_error"] == 87.0
    # resuming a finished (old) run does nothing
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()}
    assert "already finished its 2 epochs" in robench("train", "--resume", finished)
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()} == before


def test_report_has_a_leaderboard_row_per_old_folder(folder):
    from robench.report import tidy

    clean = float(by_cell(rows(folder / "old-run" / "eval" / CSV_NAME))[("clean", 0)]["error"])
    ext_clean = float(by_cell(rows(folder / "old-external" / "eval" / CSV_NAME))[("clean", 0)]["error"])
    board = {r["run"]: r for r in json.loads(robench("report", folder, "--format", "json"))["leaderboard"]}
    assert set(board) == {"old-run", "old-external", "old-stopped"}
    assert (board["old-run"]["policy"], board["old-run"]["source"], board["old-run"]["n"]) == ("standard", "generated", 200)
    assert board["old-run"]["clean"] == clean and board["old-run"]["frost_textures"] == "procedural"
    assert board["old-external"]["policy"] == "external" and board["old-external"]["clean"] == ext_clean
    assert board["old-stopped"]["status"] == "not evaluated; stopped at epoch 1/2"
    markdown = robench("report", folder)
    assert any(line.startswith("|") and "| old-run " in line for line in markdown.splitlines())
    assert any(line.startswith("|") and "| old-external " in line and "| external " in line for line in markdown.splitlines())

    results = tidy.load([folder])
    assert results.runs.set_index("run")["status"].to_dict() == {
        "old-run": "trained", "old-external": "external", "old-stopped": "stopped at epoch 1/2"}
    for name in ("old-run", "old-external"):  # every cell and column of the old CSV reaches the report
        table = rows(folder / name / "eval" / CSV_NAME)
        cells = results.cells[results.cells["run"] == name]
        assert len(cells) == len(table)
        for r in table:
            got = cells[(cells["corruption"] == r["corruption"]) & (cells["severity"] == int(r["severity"]))].iloc[0]
            assert (got["n"], got["error"], got["frost_textures"]) == (int(r["n"]), float(r["error"]), r["frost_textures"])
            for column in CALIBRATION:
                assert close(str(got[column]), r[column]), (name, r["corruption"], column)


def test_old_checkpoints_load_and_predict_what_the_old_csv_says(folder):
    from robench.data import load_split
    from robench.runfolder.checkpoints import load_checkpoint, load_model
    from robench.train.resume import RESUME_KEYS

    stopped = load_checkpoint(folder / "old-stopped")
    assert set(RESUME_KEYS) <= set(stopped) and stopped["model"] == "small-cnn" and stopped["num_classes"] == 10
    model, checkpoint = load_model(folder / "old-run" / "checkpoint.pt", torch.device("cpu"))
    assert checkpoint["epoch"] == 2 and checkpoint["position"] == 0
    clean = by_cell(rows(folder / "old-run" / "eval" / CSV_NAME))[("clean", 0)]
    test = load_split("shapes10", False, limit=int(clean["n"]))
    with torch.no_grad():
        predicted = model(test.images).argmax(1)  # uint8, as eval gives it
    assert int((predicted == test.labels).sum()) == int(clean["correct"])
