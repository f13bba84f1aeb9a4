"""Training and evaluation at 64 px use the Tiny-ImageNet-C protocol end to end: a tiny model
trained on a 64-px image tree (train/ and val/ class folders) is evaluated on generated cells made
by the tiny-imagenet-c table and stored as quality-85 JPEGs, and every row says so."""

import csv

import torch

from robench.corruptions import corrupt
from robench.data import load_split
from tests.cli_calls import invoke
from tests.imagetrees import write_jpeg

CLASSES = ("ant", "bee", "cat")


def tree(root):
    for split, count in (("train", 12), ("val", 6)):
        for label, name in enumerate(CLASSES):
            for k in range(count):
                write_jpeg(root / split / name / f"{name}_{k}.JPEG", 100 * label + k + (1000 if split == "val" else 0),
                           (64, 64))
    return root


def test_a_64px_model_is_trained_and_evaluated_under_tiny_imagenet_c(tmp_path):
    data = f"folder:{tree(tmp_path / 'tiny')}"
    result = invoke("train", "--dataset", data, "--model", "small-cnn", "--epochs", "1", "--batch-size", "16",
                    "--out-dir", tmp_path / "results", "--name", "t64", "--device", "cpu")
    assert result.exit_code == 0, result.output
    run = tmp_path / "results" / "t64"
    result = invoke("eval", run, "--corruptions", "gaussian_noise,contrast", "--severities", "1,5", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "protocol tiny-imagenet-c stored as jpeg85" in result.output
    [path] = (run / "eval").glob("*-generated.csv")  # the dataset's own protocol: no tag in the name
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 5 and {r["n"] for r in rows} == {"18"}
    assert {(r["benchmark"], r["protocol"], r["storage"]) for r in rows} == {("c", "tiny-imagenet-c", "jpeg85")}


def test_the_64px_cells_are_the_tiny_imagenet_c_table_not_cifars(tmp_path):
    """What eval corrupts at 64 px by default differs from CIFAR's size-scaled table (Tiny's noise is
    twice as strong at severity 2: sigma 0.08 against 0.06)."""
    images = load_split(f"folder:{tree(tmp_path / 'tiny')}", False).read(0, 6)
    tiny = corrupt(images, "gaussian_noise", 2, seed=0, storage=False)
    scaled = corrupt(images, "gaussian_noise", 2, seed=0, protocol="scaled")
    noise = lambda out: (out.double() - images.double()).std().item()  # noqa: E731
    assert noise(tiny) > 1.25 * noise(scaled)
    assert torch.equal(tiny, corrupt(images, "gaussian_noise", 2, seed=0, protocol="tiny-imagenet-c", storage=False))
