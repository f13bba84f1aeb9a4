"""`robench eval --benchmark p | c-bar` and `--protocol` end to end on tiny data: which CSV each writes,
its columns and recorded setting, numbers equal to the engines run directly on the same model and
images, resume, aliases, the Python API's protocol, and -P under torchrun.

One tiny trained small-cnn over shapes10 (its predictions vary from image to image, so flip
probabilities and errors are not trivially zero) serves the module."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_calls import TINY, invoke
from locations import ROOT

import robench
from robench.corruptions.benchmarks import CBAR
from robench.corruptions.cbar import corrupt_bar_chunks, generated_bar_batches
from robench.corruptions.cbar_protocol import chunk_seed as bar_chunk_seed
from robench.corruptions.perturbations import generated_sequences
from robench.data import load_split
from robench.eval.perturbation import evaluate_perturbation
from robench.runfolder.checkpoints import load_model
from robench.runfolder.files import EVAL_FIELDS, P_FIELDS

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny trained run (an untrained net predicts one class everywhere: no flips to measure)."""
    out = tmp_path_factory.mktemp("results")
    result = invoke("train", *TINY, "--out-dir", out, "--name", "r", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out / "r"


@pytest.fixture
def run(base, tmp_path):
    return Path(shutil.copytree(base, tmp_path / "r"))


def rows_of(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def history(path: Path) -> list[dict]:
    return json.loads(path.with_suffix(".json").read_text())["evaluations"]


def eval_ok(run, *args):
    result = invoke("eval", run, "--device", "cpu", *args)
    assert result.exit_code == 0, result.output
    return result


def model_of(run):
    model, _ = load_model(run / "checkpoint.pt", CPU)
    return model.eval()


# --- -P --------------------------------------------------------------------------------------------

P_NAMES = ["gaussian_noise", "translate"]


def test_p_writes_one_row_per_perturbation_equal_to_the_engine_run_directly(run):
    eval_ok(run, "--benchmark", "p", "--corruptions", ",".join(P_NAMES), "--limit", "12")
    assert sorted(p.name for p in (run / "eval").glob("*.csv")) == ["shapes10-p-generated.csv"]
    fields, rows = rows_of(run / "eval" / "shapes10-p-generated.csv")
    assert fields == P_FIELDS
    assert [r["corruption"] for r in rows] == P_NAMES
    for r in rows:
        assert (r["severity"], r["n"], r["benchmark"], r["protocol"], r["storage"], r["source"]) == (
            "0", "12", "p", "cifar10-p", "none", "generated")
    model = model_of(run)
    images = load_split("shapes10", False, limit=12).images
    for r in rows:
        name = r["corruption"]
        with torch.no_grad():
            direct = evaluate_perturbation(lambda x: model(x).float(), generated_sequences(images, name, 0), name)
        assert r["flip_prob"] == f"{direct['flip_prob']:.6f}" and r["top5_dist"] == f"{direct['top5_dist']:.6f}"
        assert int(r["frames"]) == direct["frames"]
    assert any(float(r["flip_prob"]) > 0 or float(r["top5_dist"]) > 0 for r in rows)  # a test with teeth


def test_p_skips_done_perturbations_and_takes_the_dataset_qualified_alias(run):
    eval_ok(run, "--benchmark", "p", "--corruptions", "brightness", "--limit", "8")
    path = run / "eval" / "shapes10-p-generated.csv"
    first = rows_of(path)[1]
    eval_ok(run, "--benchmark", "cifar10-p", "--corruptions", "brightness,translate", "--limit", "8")
    rows = rows_of(path)[1]
    assert [r["corruption"] for r in rows] == ["brightness", "translate"] and rows[0] == first[0]
    assert (history(path)[-1]["computed"], history(path)[-1]["skipped"]) == (1, 1)
    assert sorted(p.name for p in (run / "eval").glob("*.csv")) == ["shapes10-p-generated.csv"]


# --- C-bar -----------------------------------------------------------------------------------------

def test_c_bar_cells_equal_the_c_bar_engine_through_the_model(run):
    eval_ok(run, "--benchmark", "c-bar", "--corruptions", "sparkles,ripple", "--severities", "3", "--limit", "40",
            "--batch-size", "7")
    assert sorted(p.name for p in (run / "eval").glob("*.csv")) == ["shapes10-c-bar-generated.csv"]
    fields, rows = rows_of(run / "eval" / "shapes10-c-bar-generated.csv")
    assert fields == EVAL_FIELDS
    assert [(r["corruption"], r["severity"]) for r in rows] == [("clean", "0")] + [
        (name, "3") for name in CBAR if name in ("sparkles", "ripple")]  # C-bar's order
    assert {(r["benchmark"], r["protocol"], r["storage"]) for r in rows} == {("c-bar", "c-bar", "none")}
    model = model_of(run)
    test = load_split("shapes10", False, limit=40)
    for r in rows[1:]:
        name = r["corruption"]
        corrupted = corrupt_bar_chunks(test.images, name, 3, [bar_chunk_seed(0, name, 3, 0)])
        assert torch.equal(corrupted, torch.cat([b for _, b in generated_bar_batches(test.images, name, 3, 0, 1000)]))
        with torch.no_grad():
            wrong = int((model(corrupted).argmax(1) != test.labels).sum())
        assert r["error"] == f"{100 * wrong / 40:.4f}", name
    assert rows[1]["nll"] != rows[0]["nll"]  # the cells were corrupted (C-bar's engine, not the clean images)


# --- --protocol -------------------------------------------------------------------------------------

def test_a_named_protocol_gets_its_own_csv_and_the_default_eval_does_not_reuse_its_cells(run):
    eval_ok(run, "--protocol", "scaled", "--corruptions", "contrast", "--severities", "2", "--limit", "20")
    scaled = run / "eval" / "shapes10-scaled-generated.csv"
    assert {r["protocol"] for r in rows_of(scaled)[1]} == {"scaled"}
    eval_ok(run, "--corruptions", "contrast", "--severities", "2", "--limit", "20")
    default = run / "eval" / "shapes10-generated.csv"
    assert {r["protocol"] for r in rows_of(default)[1]} == {"cifar10-c"}
    assert (history(default)[-1]["computed"], history(default)[-1]["skipped"]) == (2, 0)
    assert len(history(scaled)) == 1


def test_the_python_api_records_the_protocol(base):
    frame = robench.evaluate(str(base), dataset="shapes10", corruptions="contrast", severities="1", limit=10,
                             device="cpu", source="generated", protocol="scaled")
    assert list(frame["protocol"]) == ["scaled", "scaled"] and list(frame["benchmark"]) == ["c", "c"]
    default = robench.evaluate(str(base), dataset="shapes10", corruptions="contrast", severities="1", limit=10,
                               device="cpu", source="generated")
    assert list(default["protocol"]) == ["cifar10-c", "cifar10-c"]


# --- torchrun ---------------------------------------------------------------------------------------

def test_p_under_torchrun_with_two_ranks_writes_the_one_process_csv(base, tmp_path):
    args = ["--benchmark", "p", "--corruptions", "brightness", "--limit", "10", "--source", "generated"]
    one = Path(shutil.copytree(base, tmp_path / "one"))
    eval_ok(one, *args)
    two = Path(shutil.copytree(base, tmp_path / "two"))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "robench", "eval", str(two), "--device", "cpu", *args],
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    name = "eval/shapes10-p-generated.csv"
    assert (two / name).read_text() == (one / name).read_text()
    assert history(two / name)[-1]["ranks"] == 2 and done.stdout.count("mean flip probability") == 1
