"""Long runs: a run killed mid-epoch (SIGKILL) or stopped by a signal and resumed ends with exactly
the weights of a run never stopped; a non-finite loss keeps the last good checkpoint; --overwrite
never costs the old run before the new one has an epoch; resume refuses what it cannot honour."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robench.cli import app

# 4 epochs of 12 steps, a mid-epoch checkpoint every 5 steps; augmentation and mixing both draw
# from the augmentation generator, dropout-free small-cnn from the global one at init.
RUN = ["--dataset", "shapes10", "--model", "small-cnn", "--epochs", "4", "--batch-size", "16", "--train-limit",
       "192", "--test-limit", "40", "--lr", "0.05", "--policy", "randaugment", "--mix", "cutmix",
       "--checkpoint-every", "5", "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same threads in every process: same float sums


def robench(*args, **kw):
    return subprocess.run([sys.executable, "-m", "robench", *map(str, args)], env=ENV, capture_output=True,
                          text=True, **kw)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def metrics(run: Path) -> list[tuple]:
    """The metrics rows without their timings."""
    with open(run / "metrics.csv") as f:
        return [(r["epoch"], r["lr"], r["train_loss"], r["train_error"], r["test_error"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    result = robench("train", *RUN, "--out-dir", out, "--name", "ref")
    assert result.returncode == 0, result.stderr
    return out / "ref"


def stop_mid_epoch(out: Path, sig: int) -> subprocess.CompletedProcess:
    """Start the run, wait for a checkpoint taken inside epoch 2 or later, send `sig`."""
    proc = subprocess.Popen([sys.executable, "-m", "robench", "train", *RUN, "--out-dir", str(out), "--name", "run"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint, seen = out / "run" / "checkpoint.pt", None
    try:
        while proc.poll() is None:
            stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            if stamp != seen and stamp is not None:
                seen = stamp
                state = load(checkpoint)
                if state["epoch"] >= 1 and state["position"] > 0:
                    proc.send_signal(sig)
                    break
            time.sleep(0.002)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_run_stopped_mid_epoch_and_resumed_ends_bit_identical(reference, tmp_path, sig):
    stopped = stop_mid_epoch(tmp_path, sig)
    run = tmp_path / "run"
    if sig == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL
    else:  # the handler checkpoints at the next step and exits with the resumable code, one line
        assert stopped.returncode == 75, stopped.stderr
        assert stopped.stderr.strip().splitlines() == [stopped.stderr.strip()]
        assert "stopped by SIGINT" in stopped.stderr and f"--resume {run}" in stopped.stderr
    assert not (run / "run.json").exists()
    state = load(run / "checkpoint.pt")
    assert state["position"] > 0 and state["epoch"] < 4  # really mid-epoch
    resumed = robench("train", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert f"at epoch {state['epoch'] + 1}, step {state['position']}/12" in resumed.stdout
    final, expected = load(run / "checkpoint.pt"), load(reference / "checkpoint.pt")
    assert final["state_dict"].keys() == expected["state_dict"].keys()
    for key, value in expected["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key
    assert metrics(run) == metrics(reference)  # the interrupted epoch's row too (partial sums kept)
    assert (run / "run.json").exists()
    assert robench("train", "--resume", run).stdout.startswith(f"{run} already finished")


runner = CliRunner()
TINY = ["--dataset", "shapes10", "--model", "small-cnn", "--epochs", "2", "--batch-size", "32", "--train-limit",
        "96", "--test-limit", "20", "--device", "cpu"]


def test_a_non_finite_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from robench.train import loop as train

    calls = {"n": 0}
    original = train.Step.__call__

    def poisoned(self, images, labels):  # from the 5th step (epoch 2) the loss is nan
        calls["n"] += 1
        loss, logits = original(self, images, labels)
        return (loss * float("nan") if calls["n"] >= 5 else loss), logits

    monkeypatch.setattr(train.Step, "__call__", poisoned)
    result = runner.invoke(app, ["train", *TINY, "--out-dir", tmp_path, "--name", "nan"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "non-finite in epoch 2" in result.stderr, result.stderr
    run = tmp_path / "nan"
    state = load(run / "checkpoint.pt")
    assert state["epoch"] == 1 and state["position"] == 0 and len(metrics(run)) == 1
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert not (run / "run.json").exists()


def test_overwrite_keeps_the_old_run_until_the_new_one_has_an_epoch(tmp_path, monkeypatch):
    from robench.train import loop as train

    old = tmp_path / "r"
    assert runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out-dir", tmp_path, "--name", "r"]).exit_code == 0
    (old / "eval").mkdir()
    (old / "eval" / "mine.csv").write_text("kept\n")
    before = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()}

    original = train.Step.__call__

    def interrupted(self, images, labels):  # Ctrl-C arrives during the new run's second step
        out = original(self, images, labels)
        if self.calls == 2:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(train.Step, "calls", 0, raising=False)
    monkeypatch.setattr(train.Step, "__call__", lambda self, *a: (setattr(self, "calls", self.calls + 1),
                                                                  interrupted(self, *a))[1])
    result = runner.invoke(app, ["train", *TINY, "--lr", "0.2", "--checkpoint-every", "1", "--out-dir", tmp_path,
                                 "--name", "r", "--overwrite"])
    assert result.exit_code == 130, result.output
    assert "the old run in" in result.stderr and result.stderr.count("\n") == 1
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()} == before
    assert (old / "eval" / "mine.csv").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["r"]

    monkeypatch.setattr(train.Step, "__call__", original)
    result = runner.invoke(app, ["train", *TINY, "--lr", "0.2", "--out-dir", tmp_path, "--name", "r", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (old / "eval").exists() and len(metrics(old)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_start_that_never_checkpointed_does_not_block_a_rerun(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("model: small-cnn\n")
    (tmp_path / "r" / ".checkpoint.pt.tmp123").write_bytes(b"half")
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out-dir", tmp_path, "--name", "r"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint.pt", "config.yaml", "metrics.csv",
                                                                   "run.json"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out-dir", tmp_path, "--name", "mine"])
    assert result.exit_code == 2 and "is not a robench run" in result.stderr


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished one-epoch run r (lr 0.1, policy standard) and a folder 'half' holding only a config."""
    out = tmp_path_factory.mktemp("one-epoch")
    assert runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out-dir", out, "--name", "r"]).exit_code == 0
    (out / "half").mkdir()
    (out / "half" / "config.yaml").write_text("model: small-cnn\n")
    return out


@pytest.mark.parametrize("args, message", [
    (["--resume", "{tmp}/nope"], "there is no run there"),
    (["--resume", "{tmp}/r", "--lr", "0.3"], "cannot resume {tmp}/r with --lr 0.3: the run was started with 0.1"),
    (["--resume", "{tmp}/r", "--policy", "augmix"], "with --policy 'augmix'"),
    (["--resume", "{tmp}/r", "--seeds", "0,1"], "cannot be combined with --seeds"),
    (["--resume", "{tmp}/half"], "it has no checkpoint yet"),
    (["--seeds", "2-1"], "bad --seeds '2-1'"),
])
def test_resume_refuses_what_it_cannot_honour(one_epoch, args, message):
    tmp_path = one_epoch
    listing = sorted(str(p) for p in tmp_path.rglob("*"))
    result = runner.invoke(app, ["train", *[a.format(tmp=tmp_path) for a in args]])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message.format(tmp=tmp_path) in result.stderr, result.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == listing


def test_torchrun_trains_with_two_gloo_processes_and_writes_once(tmp_path):
    """2 CPU ranks (gloo): one set of files and one line per epoch (rank 0 only), the global batch
    split across the ranks, all-reduced finite metrics; the checkpoint resumes only on 2 ranks."""
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "robench", "train", *TINY, "--batch-size", "32", "--out-dir", str(tmp_path),
                             "--name", "ddp", "--checkpoint-every", "1"], env=ENV, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert sum(line.startswith("training ") for line in lines) == 1 and "x 2 processes" in lines[0]
    assert sum(line.startswith("epoch ") for line in lines) == 2 and sum(line.startswith("done: ") for line in lines) == 1
    run = tmp_path / "ddp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.yaml", "metrics.csv", "run.json"]
    rows = metrics(run)
    assert len(rows) == 2 and all(float(loss) == float(loss) and float(loss) < 10 for _, _, loss, _, _ in rows)
    state = load(run / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["augment"], state["rng"][1]["augment"])  # a stream per rank
    result = runner.invoke(app, ["train", "--resume", run])
    assert result.exit_code == 2 and "it was trained on 2" in result.stderr


def test_the_loader_splits_each_global_batch_across_ranks_and_resumes_mid_epoch():
    from robench.data.loader import DeviceLoader
    from robench.runtime.distributed import rank_seed, share

    images, labels = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 3, 2, 2), torch.arange(50)
    one = DeviceLoader(images, labels, 12, "cpu", seed=3)
    ranks = [DeviceLoader(images, labels, 12, "cpu", seed=3, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(2):  # two epochs: the same permutation on every rank, each rank half of each batch
        whole = [l for _, l in one]
        halves = [[l for _, l in loader] for loader in ranks]
        assert len(whole) == 4 and [torch.cat(pair).tolist() for pair in zip(*halves)] == [b.tolist() for b in whole]
        assert all(len(b) == 6 for half in halves for b in half)
    again = DeviceLoader(images, labels, 12, "cpu", seed=3)
    again.resume(1, 3)  # the second epoch from its fourth batch
    assert [l.tolist() for _, l in again] == [whole[3].tolist()]
    assert [l.tolist() for _, l in again] != [b.tolist() for b in whole]  # the next pass is epoch 3
    assert [share(10, r, 3) for r in range(3)] == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert rank_seed(7, 0) == 7 and len({rank_seed(7, r) for r in range(8)}) == 8
