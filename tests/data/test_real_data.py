"""Real data: a small CNN trained briefly on Fashion-MNIST through the CLI really learns, and the
noise and blur corruptions at severity 5 really hurt it. Skips where Debian's dataset-fashion-mnist
is not installed (`make test` installs it when it can)."""

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robench.cli import app

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
NOISE_AND_BLUR = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur"]


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    if not (DEBIAN / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed: apt-get install dataset-fashion-mnist (make test does this as root)")
    out = tmp_path_factory.mktemp("fashion")
    result = CliRunner().invoke(app, ["train", "--dataset", "fashion-mnist", "--model", "small-cnn", "--epochs", "2",
                                      "--batch-size", "128", "--lr", "0.05", "--policy", "none", "--train-limit", "30000",
                                      "--test-limit", "2000", "--out-dir", str(out), "--name", "fmnist"])
    assert result.exit_code == 0, result.output
    return out / "fmnist"


def test_small_cnn_learns_fashion_mnist(fashion_run):
    run = json.loads((fashion_run / "run.json").read_text())
    assert run["clean_error"] <= 12.0, f"clean accuracy {100 - run['clean_error']:.1f}% < 88%"
    assert run["preprocessing"].startswith("grey 28x28 replicated to RGB")


def test_noise_and_blur_at_severity_5_hurt(fashion_run):
    result = CliRunner().invoke(app, ["eval", str(fashion_run), "--corruptions", ",".join(NOISE_AND_BLUR),
                                      "--severities", "5", "--limit", "2000"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(fashion_run / "eval" / "fashion-mnist-generated.csv")))
    errors = {r["corruption"]: float(r["error"]) for r in rows}
    for name in NOISE_AND_BLUR:
        assert errors[name] > errors["clean"] + 1.0, (name, errors[name], errors["clean"])
