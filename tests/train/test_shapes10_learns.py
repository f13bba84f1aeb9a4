"""The embedded dataset is a real task: a small CNN trained briefly on 2 CPU cores reaches at least
85 % clean accuracy, and severe noise, blur and weather corruptions cost it clear accuracy."""

import csv
import json

import pytest
from typer.testing import CliRunner

from robench.cli import app

SEVERE = ["gaussian_noise", "shot_noise", "defocus_blur", "motion_blur", "zoom_blur", "snow", "fog"]


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    result = CliRunner().invoke(app, ["train", "--dataset", "shapes10", "--model", "small-cnn", "--epochs", "3",
                                      "--batch-size", "128", "--lr", "0.05", "--out-dir", str(out), "--name", "s"])
    assert result.exit_code == 0, result.output
    return out / "s"


def test_small_cnn_reaches_85_percent_on_shapes10(shapes_run):
    run = json.loads((shapes_run / "run.json").read_text())
    assert run["train_images"] == 20_000 and run["test_images"] == 2_000
    assert run["clean_error"] <= 15.0, f"clean accuracy {100 - run['clean_error']:.1f}% < 85%"


def test_severe_noise_blur_and_weather_cost_clear_accuracy(shapes_run):
    result = CliRunner().invoke(app, ["eval", str(shapes_run), "--corruptions", ",".join(SEVERE), "--severities", "5"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(shapes_run / "eval" / "shapes10-generated.csv")))
    errors = {r["corruption"]: float(r["error"]) for r in rows}
    for name in SEVERE:
        assert errors[name] >= errors["clean"] + 5.0, (name, errors[name], errors["clean"])
