"""A streamed image folder under torchrun: each rank decodes and evaluates its own whole chunks of
the files, generated cells keep their chunk seeds, and the eval CSV is byte-identical to the
one-process one (issue: ImageNet-scale evaluation)."""

import os
import subprocess
import sys

import pytest
from locations import ROOT

from tests.cli_calls import invoke
from tests.imagetrees import write_jpeg

CLASSES = ("ant", "bee", "cat")
N = 1050  # three 500-image chunks: two ranks get 2 and 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamed")
    for split, count in (("train", 8), ("val", 2)):
        for label, name in enumerate(CLASSES):
            for k in range(count):
                write_jpeg(root / "small" / split / name / f"{k}.JPEG", 10 * label + k, (64, 64))
    for k in range(N):  # a train/ beside val/: the images are used as stored (64 px: tiny-imagenet-c)
        write_jpeg(root / "big" / "val" / CLASSES[k % 3] / f"{k:05d}.JPEG", 1000 + k, (64, 64), quality=80)
    (root / "big" / "train").mkdir()
    result = invoke("train", "--dataset", f"folder:{root / 'small'}", "--model", "small-cnn", "--epochs", "1",
                    "--batch-size", "8", "--out-dir", root / "results", "--name", "run", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return root


def evaluate(root, name, ranks):
    run = root / "results" / "run"
    eval_dir = run / "eval"
    for old in eval_dir.glob("*") if eval_dir.exists() else []:
        old.unlink()
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)] if ranks > 1 else []
    done = subprocess.run([sys.executable, *launcher, "-m", "robench", "eval", str(run), "--dataset",
                           f"folder:{root / 'big'}", "--corruptions", "gaussian_noise,contrast", "--severities", "2",
                           "--device", "cpu", "--batch-size", "200"],
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [csv_path] = eval_dir.glob("*.csv")
    return csv_path.read_text()


def test_a_streamed_folder_gives_the_same_csv_for_one_and_two_ranks(trained):
    one = evaluate(trained, "one", 1)
    assert one.count("\n") == 4 and ",tiny-imagenet-c,jpeg85,all" in one and f",{N},"in one
    assert evaluate(trained, "two", 2) == one
