"""robench.data.psets: the released P-set layout, written from robench's sequences and read back.

write_generated writes uint8 (N, T, 32, 32, 3) per perturbation equal to the generated sequences,
keeps complete files on a second run (resumable per file), and never leaves a half-written file;
OfficialPSet reads chunks back as (B, T, 3, 32, 32) and names a wrongly shaped file; a release
without a checksummed archive (CIFAR-100-P) says where to get it by hand."""

import numpy as np
import pytest
import torch

from robench.corruptions import perturbations as P
from robench.data import psets
from robench.errors import RobenchError

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ["translate", "gaussian_noise"]


def images(n=3):
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_written_files_equal_the_generated_sequences_and_read_back(tmp_path):
    x = images()
    psets.write_generated(x, tmp_path, NAMES, seed=5, batch=2)
    for name in NAMES:
        array = np.load(tmp_path / f"{name}.npy")
        assert array.dtype == np.uint8 and array.shape == (3, P.FRAMES[name], 32, 32, 3)
        expected = torch.cat([b for _, b in P.generated_sequences(x, name, 5)])
        read = torch.cat([b for _, b in psets.OfficialPSet(tmp_path).sequences(name, batch=2)])
        assert torch.equal(read, expected)
    assert psets.OfficialPSet(tmp_path).check(NAMES) == 3
    assert not list(tmp_path.glob(".*partial"))


def test_a_second_run_keeps_complete_files_and_redoes_broken_ones(tmp_path):
    x = images()
    psets.write_generated(x, tmp_path, NAMES[:1], seed=5)
    done = tmp_path / "translate.npy"
    stamp = done.stat().st_mtime_ns
    (tmp_path / "gaussian_noise.npy").write_bytes(b"not a npy file")
    seen = []
    psets.write_generated(x, tmp_path, NAMES, seed=5, on_file=lambda name, n: seen.append(name))
    assert done.stat().st_mtime_ns == stamp and seen == NAMES
    assert np.load(tmp_path / "gaussian_noise.npy").shape == (3, 31, 32, 32, 3)


def test_wrong_shapes_and_missing_files_are_one_line_errors(tmp_path):
    np.save(tmp_path / "rotate.npy", np.zeros((2, 30, 32, 32, 3), np.uint8))
    with pytest.raises(RobenchError, match="expected uint8"):
        psets.OfficialPSet(tmp_path).check(["rotate"])
    with pytest.raises(RobenchError, match="missing"):
        psets.OfficialPSet(tmp_path).check(["tilt"])


def test_cifar100_p_has_no_archive_and_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path))
    with pytest.raises(RobenchError, match="drive.google.com"):
        psets.download("cifar100-p")
    assert psets.RELEASES["cifar10-p"].md5 == "125d6775afc5846ea84584d7524dedff"
