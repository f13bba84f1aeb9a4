"""train -> eval -> report through the CLI (Typer's CliRunner and a real subprocess) on tiny data."""

import csv
import json
import os
import subprocess
import sys

import formats
import numpy as np
import pytest
import torch
import yaml
from cli_calls import TINY, invoke, one_line_error

from robench.data.download import data_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny shapes10 run, trained once for the module."""
    out = tmp_path_factory.mktemp("results")
    result = invoke("train", *TINY, "--out-dir", out, "--name", "tiny")
    assert result.exit_code == 0, result.output
    return out / "tiny"


def test_train_writes_the_run_folder_contract(trained):
    assert {p.name for p in trained.iterdir()} == {"config.yaml", "checkpoint.pt", "metrics.csv", "run.json"}
    config = yaml.safe_load((trained / "config.yaml").read_text())
    assert config["epochs"] == 2 and config["lr"] == 0.05 and config["policy"] == "standard" and config["name"] == "tiny"
    checkpoint = torch.load(trained / "checkpoint.pt", weights_only=True)
    assert checkpoint["model"] == "small-cnn" and checkpoint["num_classes"] == 10 and checkpoint["epoch"] == 2
    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "lr", "train_loss", "train_error", "test_error", "images_per_s", "seconds"}
    assert float(rows[-1]["lr"]) < 1e-6  # cosine reached its end, stepped per batch
    run = json.loads((trained / "run.json").read_text())
    for key in ("model", "policy", "dataset", "seed", "epochs", "parameters", "clean_error", "versions", "device", "wall_time_s"):
        assert key in run
    assert run["clean_error"] == pytest.approx(float(rows[-1]["test_error"]), abs=1e-2)
    assert run["parameters"] == sum(t.numel() for k, t in checkpoint["state_dict"].items()
                                    if not k.endswith(("running_mean", "running_var", "num_batches_tracked", "mean", "std")))


def test_training_is_reproducible_from_the_seed(trained, tmp_path):
    result = invoke("train", "--config", trained / "config.yaml", "--out-dir", tmp_path, "--name", "again")
    assert result.exit_code == 0, result.output
    a = torch.load(trained / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "again" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_eval_generated_and_report(trained, tmp_path):
    result = invoke("eval", trained, "--corruptions", "gaussian_noise,contrast", "--severities", "1,5", "--batch-size", "64")
    assert result.exit_code == 0, result.output
    out = trained / "eval" / "shapes10-generated.csv"
    rows = list(csv.DictReader(open(out)))
    assert [(r["corruption"], r["severity"]) for r in rows] == [
        ("clean", "0"), ("gaussian_noise", "1"), ("gaussian_noise", "5"), ("contrast", "1"), ("contrast", "5")]
    assert set(rows[0]) == {"corruption", "severity", "n", "correct", "error", "dataset", "source", "seed", "frost_textures",
                            "nll", "brier", "ece", "rms_ce", "benchmark", "protocol", "storage", "subset"}
    assert all(r["n"] == "100" and r["source"] == "generated" for r in rows)
    # shapes10 is 32 px: CIFAR-10-C's own generator, no storage step, the whole test set.
    assert {(r["benchmark"], r["protocol"], r["storage"], r["subset"]) for r in rows} == {("c", "cifar10-c", "none", "all")}
    assert float(rows[0]["error"]) == pytest.approx(100 * (1 - int(rows[0]["correct"]) / 100), abs=1e-3)
    # The same cells again, with another batch size: identical counts (chunk-keyed randomness).
    again = invoke("eval", trained, "--corruptions", "gaussian_noise", "--severities", "5", "--batch-size", "1000")
    assert again.exit_code == 0, again.output
    rows2 = {(r["corruption"], r["severity"]): r for r in csv.DictReader(open(out))}
    assert rows2[("gaussian_noise", "5")]["correct"] == rows[2]["correct"]
    assert ("contrast", "1") in rows2  # cells of the earlier evaluation are kept
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["source"] == "generated" and meta["n"] == 100
    report = invoke("report", trained.parent, "--out", tmp_path / "board.md")
    assert report.exit_code == 0, report.output
    assert "| tiny" in report.stdout and "small-cnn" in report.stdout
    assert (tmp_path / "board.md").read_text().startswith("## Leaderboard")
    csv_out = invoke("report", trained.parent, "--out", tmp_path / "board.csv")
    assert csv_out.exit_code == 0 and (tmp_path / "board.csv").read_text().startswith("run,model,policy")


def test_cifar10_official_eval_on_tiny_real_format_files(tmp_path):
    """A tiny CIFAR-10 (extracted from a real-format tarball) and a tiny official C-set, through the CLI."""
    tarball = formats.cifar_tarball(tmp_path, n_train=64, n_test=40)
    import tarfile

    with tarfile.open(tarball) as tar:
        tar.extractall(data_dir())
    images, labels = formats.cifar_test_split(tarball)
    formats.official_cset(data_dir() / "CIFAR-10-C", images, labels,
                          darken={1: 0, 2: 255, 3: 255, 4: 255, 5: 255})
    result = invoke("train", "--dataset", "cifar10", "--model", "small-cnn", "--epochs", "1", "--batch-size", "32",
                    "--out-dir", tmp_path / "results", "--name", "c10")
    assert result.exit_code == 0, result.output
    result = invoke("eval", tmp_path / "results" / "c10", "--corruptions", "fog,snow", "--batch-size", "16")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "results" / "c10" / "eval" / "cifar10-official.csv")))
    errors = {(r["corruption"], int(r["severity"])): float(r["error"]) for r in rows}
    assert len(rows) == 1 + 2 * 5 and rows[1]["source"] == "official"
    # Severity 1 rows are the clean images themselves: same error as clean.
    assert errors[("fog", 1)] == errors[("clean", 0)] == errors[("snow", 1)]
    # --source official with the C-set absent: one-line error saying how to get it.
    one_line_error(invoke("eval", tmp_path / "results" / "c10", "--source", "official", "--c-dir", tmp_path / "none",
                          "--dataset", "cifar100"), "official cifar100-c files not found")


def test_hf_parquet_dataset_through_the_cli(tmp_path):
    pytest.importorskip("datasets")
    folder = formats.hf_parquet_dataset(tmp_path / "hfset")
    result = invoke("train", "--dataset", f"hf:{folder}", "--image-column", "picture", "--label-column", "category",
                    "--model", "small-cnn", "--epochs", "1", "--batch-size", "16", "--out-dir", tmp_path, "--name", "hf")
    assert result.exit_code == 0, result.output
    result = invoke("eval", tmp_path / "hf", "--corruptions", "none")
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "hf" / "eval").glob("*generated.csv"))


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "cifar11"], "unknown dataset 'cifar11'"),
    (["train", "--model", "resnet9000", "--dataset", "shapes10"], "unknown model 'resnet9000'"),
    (["train", "--policy", "magic", "--dataset", "shapes10"], "unknown policy 'magic'"),
    (["train", "--jsd", "--dataset", "shapes10"], "--jsd needs --policy augmix"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--config", "/nonexistent.yaml"], "does not exist"),
    (["eval", "/nonexistent-run"], "not a run folder"),
    (["report", "/nonexistent-results"], "does not exist"),
    (["list", "nonsense"], "unknown list"),
    (["data", "download", "imagenet"], "unknown download"),
])
def test_user_mistakes_are_one_line_errors_with_nothing_written(args, message, tmp_path):
    result = invoke(*args, *(["--out-dir", tmp_path / "r"] if args[0] == "train" else []))
    one_line_error(result, message)
    assert not (tmp_path / "r").exists()


def test_eval_argument_errors(trained):
    one_line_error(invoke("eval", trained, "--severities", "0-9"), "bad --severities")
    one_line_error(invoke("eval", trained, "--corruptions", "rain"), "unknown corruption 'rain'")
    one_line_error(invoke("eval", trained, "--source", "official"), "no official corruption release")


def test_existing_run_folder_is_not_overwritten_silently(trained):
    result = invoke("train", *TINY, "--out-dir", trained.parent, "--name", "tiny")
    one_line_error(result, "already holds a run")


def test_corrupt_checkpoint_is_one_line_error(tmp_path, trained):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained, broken, ignore=shutil.ignore_patterns("eval"))
    (broken / "checkpoint.pt").write_bytes((broken / "checkpoint.pt").read_bytes()[:1000])
    one_line_error(invoke("eval", broken, "--corruptions", "none"), "cannot load checkpoint")
    assert not (broken / "eval").exists()


def test_list_prints_every_registry():
    result = invoke("list")
    assert result.exit_code == 0
    for word in ("datasets:", "shapes10", "models:", "wrn-40-2", "policies:", "augmix", "mixers:", "cutmix",
                 "corruptions:", "jpeg_compression", "optimizers:", "adabound", "c-bar:", "pinch_and_twirl",
                 "perturbations:", "tilt"):
        assert word in result.stdout


def test_subprocess_entry_points_and_usage_errors(tmp_path):
    env = {**os.environ, "ROBENCH_DATA": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-m", "robench", "list", "models"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "resnet18" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "robench", "train", "--epochs", "many"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "robench: error:" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "robench", "eval", str(tmp_path / "nope")], capture_output=True,
                             text=True, env=env)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr
    helps = subprocess.run([sys.executable, "-m", "robench", "eval", "--help"], capture_output=True, text=True, env=env)
    assert "Example: robench eval" in helps.stdout


@pytest.mark.parametrize("extra, recorded", [
    (["--policy", "augmix", "--jsd"], {"policy": "augmix", "jsd": True}),
    (["--policy", "randaugment", "--policy-param", "magnitude=5", "--mix", "cutmix", "--label-smoothing", "0.1",
      "--optimizer", "adabound"], {"policy": "randaugment", "mix": "cutmix", "optimizer": "adabound"}),
    (["--policy", "trivialaugment", "--mix", "mixup", "--optimizer", "adamw"], {"mix": "mixup", "optimizer": "adamw"}),
    (["--policy", "autoaugment", "--mix", "ricap"], {"mix": "ricap"}),
])
def test_policies_mixers_and_optimizers_train(extra, recorded, tmp_path):
    args = ["--dataset", "shapes10", "--model", "small-cnn", "--epochs", "1", "--batch-size", "32",
            "--train-limit", "64", "--test-limit", "32"]
    result = invoke("train", *args, *extra, "--out-dir", tmp_path, "--name", "r")
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    for key, value in recorded.items():
        assert run[key] == value
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    if "--policy-param" in extra:  # resolved parameters, defaults included
        assert config["policy_params"]["magnitude"] == 5 and config["policy_params"]["num_ops"] == 2


def test_distillation_from_a_teacher_run(trained, tmp_path):
    result = invoke("train", *TINY, "--epochs", "1", "--teacher", trained, "--kd-temperature", "4", "--kd-alpha", "0.9",
                    "--out-dir", tmp_path, "--name", "student")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "student" / "run.json").read_text())["teacher"] == str(trained)
    one_line_error(invoke("train", *TINY, "--teacher", tmp_path / "nope", "--out-dir", tmp_path, "--name", "s2"),
                   "no checkpoint")
    assert not (tmp_path / "s2").exists()


def test_data_generate_writes_the_official_layout_with_evals_draws(tmp_path):
    from robench.corruptions.registry import generated_batches
    from robench.data import load_split
    from robench.data.csets import OfficialCSet

    out = tmp_path / "shapes10-C"
    result = invoke("data", "generate", "--dataset", "shapes10", "--out", out, "--corruptions", "fog,gaussian_noise",
                    "--limit", "600", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["fog.npy", "gaussian_noise.npy", "labels.npy"]
    fog, labels = np.load(out / "fog.npy"), np.load(out / "labels.npy")
    assert fog.shape == (3000, 32, 32, 3) and fog.dtype == np.uint8 and labels.shape == (3000,) and labels.dtype == np.uint8
    test = load_split("shapes10", False, limit=600)
    assert labels[:600].tolist() == labels[1200:1800].tolist() == test.labels.tolist()
    # Exactly what `robench eval --source generated` draws for the same cells.
    for severity in (1, 4):
        expected = torch.cat([b for _, b in generated_batches(test.images, "fog", severity, 0, 1000)])
        assert torch.equal(OfficialCSet(out).images("fog", severity), expected)
    assert not np.array_equal(fog[:600], fog[2400:])  # severities differ


def test_data_preview_writes_a_png_grid(tmp_path):
    from PIL import Image

    result = invoke("data", "preview", "--dataset", "shapes10", "--out", tmp_path / "grid.png", "--images", "2",
                    "--corruptions", "snow,contrast")
    assert result.exit_code == 0, result.output
    width, height = Image.open(tmp_path / "grid.png").size
    assert width > 6 * 2 * 32 and height >= 2 * 32
    one_line_error(invoke("data", "preview", "--out", tmp_path / "grid.jpg"), "must end in .png")


def markdown_rows(text: str, section: str) -> list[dict]:
    """The rows of the first markdown table after `section`, as dicts keyed by the header."""
    lines = []
    for line in text.split(section, 1)[1].splitlines():
        if line.startswith("|"):
            lines.append([c.strip() for c in line.strip("|").split("|")])
        elif lines:
            break
    return [dict(zip(lines[0], values)) for values in lines[2:]]


def test_demo_trains_two_runs_and_ranks_them_on_all_cells(tmp_path, monkeypatch):
    from robench import demo

    monkeypatch.setitem(demo.SETTINGS, "shapes10", dict(epochs=1, batch_size=64, lr=0.05, train_limit=256, test_limit=100))
    result = invoke("demo", "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    board = (tmp_path / "leaderboard-shapes10.md").read_text()
    ranked, corruptions = markdown_rows(board, "## Leaderboard"), markdown_rows(board, "## Error per corruption")
    assert {r["run"] for r in ranked} == {"shapes10-standard", "shapes10-augmix-jsd"}
    assert sorted(r["rank"] for r in ranked) == ["1", "2"]  # both complete, so both ranked
    for row in ranked:
        assert "-" not in (row["mCE"], row["extra"]) and not row["mCE"].startswith("incomplete")
        # offline, frost falls back to the stand-in, and the board says so in its own column
        assert row["frost"] == "procedural" and "frost uses the procedural stand-in" in result.stdout
    assert len(corruptions) == 2
    for row in corruptions:  # all 19 x 5 cells
        per_corruption = [v for k, v in row.items() if k not in ("run", "dataset", "source")]
        assert len(per_corruption) == 19 and all(float(v) >= 0 for v in per_corruption)
    assert "| shapes10-" in result.stdout and "augmix+jsd" in result.stdout


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(trained, tmp_path):
    import shutil

    old = tmp_path / "keep"
    shutil.copytree(trained, old)
    pytest.importorskip("datasets")
    (tmp_path / "empty").mkdir()
    result = invoke("train", "--dataset", f"hf:{tmp_path / 'empty'}", "--model", "small-cnn", "--out-dir", tmp_path,
                    "--name", "keep", "--overwrite")
    one_line_error(result, "cannot load Hugging Face dataset")  # fails while loading data
    assert (old / "run.json").exists() and (old / "checkpoint.pt").exists()
