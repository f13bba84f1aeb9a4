"""robench.runfolder.files: what robench writes (atomically, through atomic_write_bytes: text, JSON,
checkpoints) is readable as the umask allows, as a plain open would make it.

(The one-line errors for unreadable eval CSVs and run names that escape their folder are cases of
the catalogue in tests/test_bad_inputs.py.)"""

import os

import pytest
import torch

from robench.runfolder.checkpoints import atomic_torch_save
from robench.runfolder.files import atomic_write_text, write_json


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_robench_writes_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_json(tmp_path / "run" / "b.json", {})
        atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "c.pt")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == expected  # what a plain open gives
    for name in ("a.txt", "run/b.json", "c.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
