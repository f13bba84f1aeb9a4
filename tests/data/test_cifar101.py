"""CIFAR-10.1 v6: download (file:// URLs standing in for the repository), checksum verification,
the released format (uint8 (N, 32, 32, 3) .npy, integer labels .npy), eval only; small files
built here in that exact format."""

import hashlib

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from robench.cli import app
from robench.data import cifar101, load_split
from robench.data.download import data_dir
from robench.errors import RobenchError
from robench.runfolder.files import read_eval_csv

N = 40
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A tiny CIFAR-10.1 'repository' (two .npy files) served from file:// URLs with their checksums."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, N).astype(np.int32)  # 4 bytes per label, as the 8,128-byte release file
    repo = tmp_path / "repo"
    repo.mkdir()
    np.save(repo / "cifar10.1_v6_data.npy", images)
    np.save(repo / "cifar10.1_v6_labels.npy", labels)
    files = {}
    for key, spec in cifar101.FILES.items():
        path = repo / spec.name
        files[key] = cifar101.File(spec.name, path.as_uri(), "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
                                   path.stat().st_size)
    monkeypatch.setattr(cifar101, "FILES", files)
    return images, labels


def test_published_checksums_and_sizes_match_the_release_format():
    assert cifar101.FILES["data"].size == 128 + 2000 * 32 * 32 * 3  # npy header + uint8 (2000, 32, 32, 3)
    assert cifar101.FILES["labels"].size == 128 + 2000 * 4
    assert all(f.checksum.startswith("sha256:") and len(f.checksum) == 7 + 64 for f in cifar101.FILES.values())
    assert all(f.url.endswith("/datasets/" + f.name) for f in cifar101.FILES.values())


def test_downloads_verifies_and_loads_the_test_split(release):
    images, labels = release
    split = load_split("cifar10.1", False)
    assert torch.equal(split.images, torch.from_numpy(images).permute(0, 3, 1, 2))
    assert torch.equal(split.labels, torch.from_numpy(labels).long()) and split.labels.dtype == torch.int64
    assert split.num_classes == 10 and split.classes[0] == "airplane" and split.classes[9] == "truck"
    assert (data_dir() / "CIFAR-10.1" / "cifar10.1_v6_data.npy").exists()
    assert len(load_split("cifar10.1", False, limit=7)) == 7
    with pytest.raises(RobenchError, match="test set only"):
        load_split("cifar10.1", True)


def test_a_corrupt_file_is_a_one_line_error(release, monkeypatch):
    load_split("cifar10.1", False)
    path = data_dir() / "CIFAR-10.1" / "cifar10.1_v6_labels.npy"
    path.write_bytes(path.read_bytes()[:-4] + b"\x00\x00\x00\x07")
    with pytest.raises(RobenchError, match="checksum mismatch"):
        load_split("cifar10.1", False)
    # A download whose checksum differs is not kept.
    path.unlink()
    spec = cifar101.FILES["labels"]
    monkeypatch.setitem(cifar101.FILES, "labels", cifar101.File(spec.name, spec.url, "sha256:" + "0" * 64, spec.size))
    with pytest.raises(RobenchError, match="checksum mismatch"):
        load_split("cifar10.1", False)
    assert not path.exists() and not path.with_name(path.name + ".part").exists()


def test_a_cifar10_run_evaluates_on_cifar101(release, tmp_path):
    from robench.models import build_model

    images, labels = release
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    net = build_model("small-cnn", 10).eval()
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": "cifar10", "model": "small-cnn", "seed": 0}))
    torch.save({"model": "small-cnn", "num_classes": 10, "classes": [], "dataset": "cifar10", "epoch": 1,
                "state_dict": net.state_dict()}, run / "checkpoint.pt")
    result = CliRunner().invoke(app, ["eval", str(run), "--dataset", "cifar10.1", "--corruptions", "none",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (row,) = read_eval_csv(run / "eval" / "cifar10.1-generated.csv")
    with torch.no_grad():
        correct = int((net(torch.from_numpy(images).permute(0, 3, 1, 2)).argmax(1) == torch.from_numpy(labels)).sum())
    assert (row["dataset"], int(row["n"]), int(row["correct"])) == ("cifar10.1", N, correct)
