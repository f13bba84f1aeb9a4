"""Files from elsewhere are not trusted: checkpoints load without running code, archives are verified
and cannot write outside their folder; and what robench writes is readable as the umask allows."""

import io
import os
import tarfile
from pathlib import Path

import pytest
import torch

from robench.data.download import extract_tar, md5sum
from robench.errors import RobenchError
from robench.runfolder.files import atomic_write_text, write_json
from robench.runfolder.checkpoints import atomic_torch_save, load_checkpoint


class _Payload:
    """Unpickling this runs code (writes a marker file): what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"model": "small-cnn", "num_classes": 10, "state_dict": {}, "extra": _Payload(marker)},
               tmp_path / "checkpoint.pt")
    with pytest.raises(RobenchError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path)
    assert not marker.exists()
    torch.load(tmp_path / "checkpoint.pt", weights_only=False)  # the test can fail: a full unpickle runs it
    assert marker.read_text() == "pwned"


def _tar(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """A .tar.gz of (name, file content, or None and a symlink target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


@pytest.mark.parametrize("member, link, what", [
    ("top/../../escaped.txt", None, "a path outside its folder"),
    ("/tmp/robench-absolute-escape.txt", None, "a path outside its folder"),
    ("top/link", "../../escaped.txt", "a link or special file"),
])
def test_an_archive_cannot_write_outside_its_target(tmp_path, member, link, what):
    into = tmp_path / "data" / "cache"
    into.mkdir(parents=True)
    archive = _tar(tmp_path / "evil.tar.gz", [("top/ok.txt", b"fine", None),
                                               (member, None if link else b"evil", link)])
    with pytest.raises(RobenchError, match=what):
        extract_tar(archive, into, "top", md5sum(archive))
    assert not (into / "top").exists() and list(into.iterdir()) == []  # nothing extracted, no temporary left
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "data" / "escaped.txt").exists()
    assert not Path("/tmp/robench-absolute-escape.txt").exists()


def test_an_archive_is_checksum_verified_before_extraction(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [("top/ok.txt", b"fine", None)])
    with pytest.raises(RobenchError, match="checksum mismatch"):
        extract_tar(archive, tmp_path, "top", "0" * 32)
    assert not (tmp_path / "top").exists()
    assert (extract_tar(archive, tmp_path, "top", md5sum(archive)) / "ok.txt").read_text() == "fine"


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
