"""`robench data generate` in the released layouts: ImageNet-C's JPEG tree from a 224-px folder
dataset (robench.data.jpeg_tree), CIFAR-10-C-bar's and CIFAR-10-P's .npy files, each resumable; and
`data preview` under the imagenet-c protocol. Tiny data: four images of two classes, a few 32-px
shapes10 images."""

import os
from pathlib import Path

import imagetrees
import numpy as np
import pytest
import torch
from cli_calls import invoke
from PIL import Image

from robench.corruptions.protocol import chunk_seed
from robench.corruptions.registry import corrupt, generated_batches
from robench.data import load_split

NAMES = ["contrast", "gaussian_noise"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """folder:<root>: classes a and b, two JPEGs each of assorted sizes (Resize 256 + CenterCrop 224)."""
    root = tmp_path_factory.mktemp("tree")
    for k, (cls, name) in enumerate([("a", "x.jpg"), ("a", "y.JPEG"), ("b", "z.jpeg"), ("b", "w.jpg")]):
        imagetrees.write_jpeg(root / cls / name, k, (250 + 10 * k, 240))
    return root


def generate(*args):
    result = invoke("data", "generate", "--device", "cpu", *args)
    assert result.exit_code == 0, result.output
    return result


def decoded(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def stamps(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def written(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "C"
    generate("--dataset", f"folder:{tree}", "--out", out, "--protocol", "imagenet-c", "--corruptions", ",".join(NAMES))
    return out


def test_imagenet_c_tree_has_the_released_layout(written, tree):
    files = sorted(f"{c}/{Path(f).stem}.JPEG" for c in ("a", "b") for f in os.listdir(tree / c))
    assert sorted(p.name for p in written.iterdir()) == sorted(NAMES)
    for name in NAMES:
        assert sorted(p.name for p in (written / name).iterdir()) == ["1", "2", "3", "4", "5"]  # no hidden leftovers
        for severity in range(1, 6):
            folder = written / name / str(severity)
            assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == files


def test_imagenet_c_files_decode_to_the_engines_stored_pixels(written, tree):
    test = load_split(f"folder:{tree}", False)
    images = test.read(0, len(test))
    assert images.shape[-2:] == (224, 224)
    for name in NAMES:
        for severity in (1, 3, 5):
            expected = corrupt(images, name, severity, chunk_seed(0, name, severity, 0), protocol="imagenet-c",
                               storage=True)
            batches = torch.cat([b for _, b in generated_batches(images, name, severity, 0, 1000, protocol="imagenet-c",
                                                                 storage=True)])
            assert torch.equal(expected, batches)  # what `robench eval --source generated` feeds the model
            for k, file in enumerate(test.ids):
                got = decoded(written / name / str(severity) / Path(file).with_suffix(".JPEG"))
                assert torch.equal(got, expected[k]), (name, severity, file)
    assert not torch.equal(decoded(written / "contrast" / "1" / "a" / "x.JPEG"),
                           decoded(written / "contrast" / "5" / "a" / "x.JPEG"))


def test_imagenet_c_rerun_keeps_finished_folders_and_replaces_a_stale_partial(written, tree):
    (written / "contrast" / "3").rename(written / "contrast" / ".3.partial")  # killed while writing severity 3
    (written / "contrast" / ".3.partial" / "a" / "stale.JPEG").write_bytes(b"half")
    before = {k: v for k, v in stamps(written).items() if not k.startswith("contrast/.3")}
    generate("--dataset", f"folder:{tree}", "--out", written, "--protocol", "imagenet-c", "--corruptions",
             ",".join(NAMES))
    after = stamps(written)
    assert not (written / "contrast" / ".3.partial").exists()
    assert not (written / "contrast" / "3" / "a" / "stale.JPEG").exists()
    assert sorted(p.name for p in (written / "contrast" / "3" / "a").iterdir()) == ["x.JPEG", "y.JPEG"]
    kept = {k: v for k, v in before.items() if not k.startswith("contrast/3") and k != "contrast"}  # (3 renamed in)
    assert {k: after[k] for k in kept} == kept  # finished folders untouched, to the nanosecond


def test_c_bar_and_p_layouts_and_resume(tmp_path):
    bar, p = tmp_path / "bar", tmp_path / "p"
    generate("--dataset", "shapes10", "--out", bar, "--benchmark", "c-bar", "--corruptions", "sparkles", "--limit", "6")
    generate("--dataset", "shapes10", "--out", p, "--benchmark", "cifar10-p", "--corruptions", "brightness,translate",
             "--limit", "3")
    assert sorted(x.name for x in bar.iterdir()) == ["labels.npy", "sparkles.npy"]
    sparkles, labels = np.load(bar / "sparkles.npy"), np.load(bar / "labels.npy")
    assert sparkles.shape == (30, 32, 32, 3) and sparkles.dtype == np.uint8 and labels.shape == (30,)
    test = load_split("shapes10", False, limit=6)
    assert labels[:6].tolist() == labels[24:].tolist() == test.labels.tolist()
    assert sorted(x.name for x in p.iterdir()) == ["brightness.npy", "translate.npy"]
    assert np.load(p / "brightness.npy").shape == (3, 31, 32, 32, 3)
    assert np.load(p / "translate.npy").shape == (3, 16, 32, 32, 3)
    before = stamps(bar), stamps(p)
    generate("--dataset", "shapes10", "--out", bar, "--benchmark", "c-bar", "--corruptions", "sparkles", "--limit", "6")
    generate("--dataset", "shapes10", "--out", p, "--benchmark", "p", "--corruptions", "brightness,translate",
             "--limit", "3")
    assert stamps(bar)["sparkles.npy"] == before[0]["sparkles.npy"]
    assert stamps(p) == before[1]


def test_preview_under_imagenet_c_on_a_224_px_folder_writes_a_png(tree, tmp_path):
    result = invoke("data", "preview", "--dataset", f"folder:{tree}", "--out", tmp_path / "grid.png", "--images", "1",
                    "--corruptions", "contrast", "--protocol", "imagenet-c")
    assert result.exit_code == 0, result.output
    width, height = Image.open(tmp_path / "grid.png").size
    assert width >= 224 * 5 and height >= 224
