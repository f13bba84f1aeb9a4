"""robench.data.download: an archive from elsewhere is not trusted: it is checksum-verified before
extraction and cannot write outside its folder (no "..", absolute path, link or special file).
(Downloads themselves, with resume and offline errors: tests/data/test_data.py.)"""

import io
import tarfile
from pathlib import Path

import pytest

from robench.data.download import extract_tar, md5sum
from robench.errors import RobenchError


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
