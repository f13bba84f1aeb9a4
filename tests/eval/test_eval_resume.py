"""Long evaluations: cells committed as they finish, resumed after a kill, skipped when done, safe to run
twice at once (file lock), invalidated by a changed checkpoint, identical under torchrun with 1, 2, 3
ranks; CUDA out-of-memory retried in halves (simulated on the CPU).

One seeded small-cnn over a tiny real-format CIFAR-10 of 1100 test images (two full 500-image chunks
and a partial one, so that ranks get unequal shares) serves the module.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import formats
import pytest
import torch
import yaml
from locations import ROOT

from robench.config import EvalConfig
from robench.errors import RobenchError
from robench.eval.loop import Forward, evaluate_run
from robench.models import build_model
from robench.runfolder.cellstore import locked
from robench.runfolder.files import read_eval_csv

QUIET = lambda *_: None  # noqa: E731
LIMIT = 1100
DATA_DIR = None  # set by the run fixture


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder of a seeded small-cnn over a tiny real-format CIFAR-10 (LIMIT test images), made by
    hand as robench train writes it; its data dir is the module's DATA_DIR."""
    global DATA_DIR
    root = tmp_path_factory.mktemp("cifar-data")
    tarball = formats.cifar_tarball(tmp_path_factory.mktemp("tarball"), n_train=10, n_test=LIMIT, seed=5)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="data")
    DATA_DIR = str(root)
    images = torch.from_numpy(formats.cifar_test_split(tarball)[0]).permute(0, 3, 1, 2).float() / 255
    torch.manual_seed(0)
    net = build_model("small-cnn", 10, images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).tolist())
    folder = tmp_path_factory.mktemp("results") / "r"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump({"dataset": "cifar10", "model": "small-cnn", "seed": 0}))
    torch.save({"model": "small-cnn", "num_classes": 10, "classes": [f"class{k}" for k in range(10)],
                "dataset": "cifar10", "epoch": 1, "state_dict": net.state_dict()}, folder / "checkpoint.pt")
    return folder


def fresh(run, tmp_path, name="run") -> Path:
    """A copy of the trained run without evaluations."""
    return Path(shutil.copytree(run, tmp_path / name, ignore=shutil.ignore_patterns("eval")))


def cfg(run_dir, corruptions="gaussian_noise,contrast", severities="1-5", limit=500, **kw) -> EvalConfig:
    return EvalConfig(str(run_dir), corruptions=corruptions, severities=severities, source="generated",
                      device="cpu", limit=limit, batch_size=500, data_dir=DATA_DIR, **kw)


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def cli_args(run_dir, corruptions, severities="1-5", limit=500):
    return ["eval", str(run_dir), "--corruptions", corruptions, "--severities", severities, "--source", "generated",
            "--device", "cpu", "--limit", str(limit), "--batch-size", "500", "--data-dir", DATA_DIR]


def history(csv_path: Path) -> list[dict]:
    return json.loads(csv_path.with_suffix(".json").read_text())["evaluations"]


# --- resume after a kill -----------------------------------------------------------------------------

def test_eval_killed_mid_way_and_resumed_gives_the_uninterrupted_csv(run, tmp_path):
    whole = evaluate_run(cfg(fresh(run, tmp_path, "whole"), "gaussian_noise,contrast"), echo=QUIET)
    killed = fresh(run, tmp_path, "killed")
    out = killed / "eval" / "cifar10-generated.csv"
    process = subprocess.Popen([sys.executable, "-m", "robench", *cli_args(killed, "gaussian_noise,contrast")],
                               env=env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if out.exists() and len(read_eval_csv(out)) >= 3:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    kept = read_eval_csv(out)
    assert 3 <= len(kept) < 11, "the kill must land mid-way"
    assert kept == [r for r in read_eval_csv(whole) if r in kept]  # what was committed is whole, correct rows
    evaluate_run(cfg(killed, "gaussian_noise,contrast"), echo=QUIET)
    assert out.read_text() == whole.read_text()
    resumed = history(out)[-1]
    assert (resumed["skipped"], resumed["computed"]) == (len(kept), 11 - len(kept))
    assert history(out)[0]["finished"] is None  # the killed evaluation is recorded as unfinished


# --- what counts as done -----------------------------------------------------------------------------

def test_done_cells_are_skipped_forced_again_and_invalidated_by_a_new_checkpoint(run, tmp_path):
    run_dir = fresh(run, tmp_path)
    out = evaluate_run(cfg(run_dir, "contrast", "1,2"), echo=QUIET)
    first = out.read_text()
    evaluate_run(cfg(run_dir, "contrast,gaussian_noise", "1,2"), echo=QUIET)
    assert [(e["computed"], e["skipped"]) for e in history(out)] == [(3, 0), (2, 3)]
    assert [(r["corruption"], r["severity"]) for r in read_eval_csv(out)] == [
        ("clean", "0"), ("gaussian_noise", "1"), ("gaussian_noise", "2"), ("contrast", "1"), ("contrast", "2")]
    evaluate_run(cfg(run_dir, "contrast", "1,2", force=True), echo=QUIET)
    assert history(out)[-1]["computed"] == 3 and len(read_eval_csv(out)) == 5
    # Another --limit is another set of images: nothing is done for it, and the rows of the old one go.
    evaluate_run(EvalConfig(str(run_dir), corruptions="contrast", severities="1", source="generated", device="cpu",
                        limit=300, data_dir=DATA_DIR), echo=QUIET)
    assert {r["n"] for r in read_eval_csv(out)} == {"300"} and len(read_eval_csv(out)) == 2
    # A retrained checkpoint (other weights) invalidates every cell computed with the old one.
    evaluate_run(cfg(run_dir, "contrast", "1,2"), echo=QUIET)
    assert out.read_text() == first
    old_sha = json.loads(out.with_suffix(".json").read_text())["checkpoint_sha256"]
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    checkpoint["state_dict"] = {k: v * 0.5 if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, run_dir / "checkpoint.pt")
    evaluate_run(cfg(run_dir, "contrast", "1"), echo=QUIET)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert [(r["corruption"], r["severity"]) for r in read_eval_csv(out)] == [("clean", "0"), ("contrast", "1")]
    assert history(out)[-1]["skipped"] == 0 and meta["checkpoint_sha256"] != old_sha
    assert len(meta["evaluations"]) == 6  # every evaluation is kept in the .json, not only the last


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_is_refused_before_any_cell_is_computed(run, tmp_path, monkeypatch):
    run_dir = fresh(run, tmp_path)
    monkeypatch.setattr(Forward, "update", lambda *a: pytest.fail("a cell was computed"))
    run_dir.chmod(0o555)
    try:
        with pytest.raises(RobenchError, match="cannot write"):
            evaluate_run(cfg(run_dir, "contrast", "1"), echo=QUIET)
    finally:
        run_dir.chmod(0o755)
    assert not (run_dir / "eval").exists()


def test_a_blocked_eval_folder_is_refused_before_any_cell_is_computed(run, tmp_path, monkeypatch):
    run_dir = fresh(run, tmp_path)
    (run_dir / "eval").write_text("")
    monkeypatch.setattr(Forward, "update", lambda *a: pytest.fail("a cell was computed"))
    with pytest.raises(RobenchError, match="eval is a file, not a folder"):
        evaluate_run(cfg(run_dir, "contrast", "1"), echo=QUIET)


def test_a_run_whose_training_was_killed_is_evaluated_from_its_last_checkpoint(run, tmp_path):
    run_dir = fresh(run, tmp_path)  # config.yaml and checkpoint.pt, no run.json: training never finished
    assert not (run_dir / "run.json").exists()
    said = []
    out = evaluate_run(cfg(run_dir, "contrast", "1"), echo=said.append)
    assert any("has no run.json" in line and "epoch 1" in line for line in said)
    assert len(read_eval_csv(out)) == 2 and history(out)[-1]["checkpoint_epoch"] == 1


# --- two evaluations at once -------------------------------------------------------------------------

def test_an_eval_waits_for_the_lock_before_reading_or_writing(run, tmp_path):
    run_dir = fresh(run, tmp_path)
    out = run_dir / "eval" / "cifar10-generated.csv"
    errors = []

    def job():
        try:
            evaluate_run(cfg(run_dir, "contrast", "1"), echo=QUIET)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    with locked(out):  # another process's commit in progress
        thread = threading.Thread(target=job)
        thread.start()
        time.sleep(1.5)
        assert not out.exists() and not out.with_suffix(".json").exists(), "eval wrote while the lock was held"
    thread.join(60)
    assert not errors and len(read_eval_csv(out)) == 2


def test_two_evals_of_one_run_at_once_lose_no_cell(run, tmp_path):
    run_dir = fresh(run, tmp_path)
    jobs = [subprocess.Popen([sys.executable, "-m", "robench", *cli_args(run_dir, corruptions, "1,2")], env=env(), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for corruptions in ("gaussian_noise,contrast", "brightness,pixelate")]  # both also compute clean
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    out = run_dir / "eval" / "cifar10-generated.csv"
    cells = [(r["corruption"], int(r["severity"])) for r in read_eval_csv(out)]
    expected = [("clean", 0)] + [(c, s) for c in ("gaussian_noise", "brightness", "contrast", "pixelate") for s in (1, 2)]
    assert cells == expected
    assert sorted(e["computed"] + e["skipped"] for e in history(out)) == [5, 5]
    assert all(e["finished"] for e in history(out))


# --- torchrun ----------------------------------------------------------------------------------------

def test_torchrun_eval_csv_is_identical_for_1_2_and_3_ranks(run, tmp_path):
    one = evaluate_run(cfg(fresh(run, tmp_path, "one"), "gaussian_noise,contrast", "3,5", limit=LIMIT), echo=QUIET)
    for ranks in (2, 3):
        run_dir = fresh(run, tmp_path, f"ranks{ranks}")
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                               str(ranks), "-m", "robench", *cli_args(run_dir, "gaussian_noise,contrast", "3,5", LIMIT)],
                              env=env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        out = run_dir / "eval" / "cifar10-generated.csv"
        assert out.read_text() == one.read_text(), ranks
        assert history(out)[-1]["ranks"] == ranks
        assert done.stdout.count("clean error") == 1  # only rank 0 prints


# --- CUDA out of memory ------------------------------------------------------------------------------

class _FitsUpTo(torch.nn.Module):
    """Wraps a model; a batch larger than `limit` raises CUDA's out-of-memory error (simulated)."""

    def __init__(self, model, limit):
        super().__init__()
        self.model, self.limit, self.sizes = model, limit, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.model(x)


def correct_of(counter: Forward, images, labels) -> int:
    from robench.eval.metrics import CellMetrics

    metrics = CellMetrics(torch.device("cpu"))
    counter.update(metrics, images, labels)
    return metrics.result()["correct"]


def test_out_of_memory_retries_the_batch_in_halves_and_counts_every_image(run):
    from robench.runfolder.checkpoints import load_model

    model, _ = load_model(run, torch.device("cpu"))
    images = torch.randint(0, 256, (1000, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (1000,))
    expected = correct_of(Forward(model, 1000, torch.device("cpu")), images, labels)
    messages = []
    wrapped = _FitsUpTo(model, 300)
    counter = Forward(wrapped, 1000, torch.device("cpu"), echo=messages.append)
    assert correct_of(counter, images, labels) == expected
    assert counter.batch_size == 250 and wrapped.sizes[:3] == [1000, 500, 250]
    assert sum(wrapped.sizes[3:]) == 1000 - 250  # every image counted once after the retries
    assert len(messages) == 2 and "--batch-size 250" in messages[-1]
    with pytest.raises(RobenchError, match="out of GPU memory with one image per batch"):
        correct_of(Forward(_FitsUpTo(model, 0), 4, torch.device("cpu"), echo=QUIET), images[:4], labels[:4])


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_rank_shares_are_whole_chunks_that_cover_every_image_once(world, monkeypatch):
    from robench.corruptions.protocol import CHUNK
    from robench.eval.loop import _chunk_share
    from robench.runtime import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: world)
    for n in (1, 499, 500, 1100, 10_000):
        shares = []
        for rank in range(world):
            monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
            shares.append(_chunk_share(n))
        assert all(s.start % CHUNK == 0 for s in shares)
        assert [i for s in shares for i in range(n)[s]] == list(range(n)), (n, shares)
