"""Data formats read exactly: IDX labels in order and aligned with their images; a complete, valid CIFAR
tarball placed in the data dir is still refused when its md5 is not the expected one."""

import formats
import numpy as np
import pytest
import torch

# The API under test, imported in one place (modules may move: update only these lines).
from robench.data import cifar, load_split
from robench.data.download import data_dir
from robench.data.idx import read_idx
from robench.errors import RobenchError

TEST_LABELS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 0, 2, 3, 8, 4]
TRAIN_LABELS = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2, 3, 5, 3, 6, 0, 2, 8, 7]


def _numbered_images(n: int) -> np.ndarray:
    """28x28 grey images whose every pixel is 10 * (their index) + 1: image i is recognisable after loading."""
    return np.broadcast_to((10 * np.arange(n) + 1).astype(np.uint8)[:, None, None], (n, 28, 28)).copy()


@pytest.mark.parametrize("name, train, labels, compress", [
    ("mnist", False, TEST_LABELS, True),
    ("mnist", True, TRAIN_LABELS, False),
    ("fashion-mnist", False, TRAIN_LABELS, True),
])
def test_idx_labels_load_in_order_and_aligned_with_their_images(name, train, labels, compress):
    prefix = "train" if train else "t10k"
    folder = data_dir() / name
    suffix = ".gz" if compress else ""
    n = len(labels)
    label_file = formats.idx_file(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.array(labels, np.uint8), compress)
    formats.idx_file(folder / f"{prefix}-images-idx3-ubyte{suffix}", _numbered_images(n), compress)
    assert read_idx(label_file).tolist() == labels
    split = load_split(name, train=train)
    assert split.labels.dtype == torch.int64
    assert split.labels.tolist() == labels
    # Image i (every pixel 10 i + 1, inside the 2-px zero border) still sits beside label i.
    assert split.images[:, 0, 16, 16].tolist() == [10 * i + 1 for i in range(n)]
    assert split.num_classes == 10 and len(split) == n


def _use_tarball_md5(monkeypatch, md5: str):
    """Expect `md5` for cifar10, with a download URL that can never be reached."""
    spec = cifar.TARBALLS["cifar10"]
    monkeypatch.setitem(cifar.TARBALLS, "cifar10", cifar.Tarball(
        "file:///nonexistent/cifar-10-python.tar.gz", md5, spec.folder, spec.train_files, spec.test_files,
        spec.label_key, spec.meta_file, spec.names_key))
    return spec


def test_placed_complete_tarball_with_its_md5_loads(tmp_path, monkeypatch):
    """The control for the test below: the tarball used there is complete and valid."""
    tarball = formats.cifar_tarball(tmp_path, n_train=10, n_test=6)
    _use_tarball_md5(monkeypatch, formats.md5(tarball))
    data_dir().mkdir(parents=True, exist_ok=True)
    (data_dir() / tarball.name).write_bytes(tarball.read_bytes())
    split = load_split("cifar10", train=False)
    assert split.labels.tolist() == formats.cifar_test_split(tarball)[1].tolist()


def test_placed_complete_tarball_with_a_wrong_md5_is_a_one_line_checksum_error(tmp_path, monkeypatch):
    tarball = formats.cifar_tarball(tmp_path, n_train=10, n_test=6)
    expected = "c58f30108f718f92721af3b95e74349a"  # the real CIFAR-10 tarball's md5
    assert formats.md5(tarball) != expected
    _use_tarball_md5(monkeypatch, expected)
    data_dir().mkdir(parents=True, exist_ok=True)
    placed = data_dir() / tarball.name
    placed.write_bytes(tarball.read_bytes())  # complete: not truncated, extracts fine
    with pytest.raises(RobenchError) as error:
        load_split("cifar10", train=False)
    message = str(error.value)
    assert "\n" not in message
    assert "checksum" in message and "md5" in message, message
    assert formats.md5(tarball) in message and expected in message and str(placed) in message
    assert not (data_dir() / "cifar-10-batches-py").exists()  # nothing extracted from an unverified file
