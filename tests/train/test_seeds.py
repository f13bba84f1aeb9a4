"""robench.train.seeds: `robench train --seeds 3,5` trains one run per seed, each named -s<seed>,
seeded as asked, with its own weights. (--seeds with --resume and a malformed --seeds are refused:
tests/train/test_resume.py.)"""

from pathlib import Path

import torch
from typer.testing import CliRunner

from robench.cli import app

runner = CliRunner()
TINY = ["--dataset", "shapes10", "--model", "small-cnn", "--epochs", "2", "--batch-size", "32", "--train-limit",
        "96", "--test-limit", "20", "--device", "cpu"]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_seeds_train_one_run_per_seed(tmp_path):
    result = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out-dir", str(tmp_path), "--name", "x",
                                 "--seeds", "3,5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-s3", "x-s5"]
    import yaml

    assert [yaml.safe_load((tmp_path / n / "config.yaml").read_text())["seed"] for n in ("x-s3", "x-s5")] == [3, 5]
    assert load(tmp_path / "x-s3" / "checkpoint.pt")["state_dict"]["backbone.0.0.weight"].ne(
        load(tmp_path / "x-s5" / "checkpoint.pt")["state_dict"]["backbone.0.0.weight"]).any()
    assert result.stdout.count("done: ") == 2
