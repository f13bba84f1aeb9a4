"""robench/data/jpeg_csets.py: the released JPEG C-sets' download entries (fetched, verified and
extracted into per-corruption folders; a bad checksum or an unknown part is one line) and `find`."""

import hashlib
import shutil
import tarfile

import imagetrees
import pytest

from robench.data import jpeg_csets
from robench.data.download import data_dir
from robench.errors import RobenchError


def test_the_published_entries():
    imagenet_c = jpeg_csets.RELEASES["imagenet-c"]
    held = [c for a in imagenet_c.archives for c in a.corruptions]
    assert len(held) == len(set(held)) == 19 and imagenet_c.record == 2235448
    assert all(len(a.md5) == 32 for a in imagenet_c.archives)
    assert imagenet_c.url(imagenet_c.archives[0]) == "https://zenodo.org/records/2235448/files/noise.tar?download=1"
    assert jpeg_csets.release_for("tiny-imagenet").record == 2536630


@pytest.fixture
def fake_release(tmp_path, monkeypatch):
    """A one-tar 'imagenet-c' whose tar holds fog/1/<wnid>/x.JPEG and snow/1/..., served by a fake fetch."""
    staging = tmp_path / "staging"
    for corruption in ("fog", "snow"):
        imagetrees.write_jpeg(staging / corruption / "1" / "n00000001" / "x.JPEG", 1, (32, 32))
    tar = tmp_path / "weather.tar"
    with tarfile.open(tar, "w") as t:
        for corruption in ("fog", "snow"):
            t.add(staging / corruption, arcname=corruption)
    md5 = hashlib.md5(tar.read_bytes()).hexdigest()
    release = jpeg_csets.JpegRelease("imagenet-c", "imagenet", 1, "ImageNet-C",
                                     (jpeg_csets.Archive("weather.tar", md5, ("fog", "snow")),))
    monkeypatch.setitem(jpeg_csets.RELEASES, "imagenet-c", release)
    fetched = []

    def fetch(url, dest, md5, what, size=None):
        fetched.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tar, dest)
        return dest

    monkeypatch.setattr(jpeg_csets, "fetch", fetch)
    return release, fetched


def test_download_extracts_each_corruption_folder_and_find_sees_it(fake_release):
    release, fetched = fake_release
    assert jpeg_csets.find("imagenet") is None
    root = jpeg_csets.download("imagenet-c")
    assert root == data_dir() / "ImageNet-C"
    assert (root / "fog" / "1" / "n00000001" / "x.JPEG").is_file() and (root / "snow" / "1").is_dir()
    assert jpeg_csets.find("imagenet") == root
    jpeg_csets.download("imagenet-c")  # already there: nothing fetched again
    assert len(fetched) == 1
    with pytest.raises(RobenchError, match="unknown part of imagenet-c in rain; choose from: weather"):
        jpeg_csets.download("imagenet-c", ["rain"])


def test_a_wrong_checksum_extracts_nothing(fake_release, monkeypatch):
    release, _ = fake_release
    bad = jpeg_csets.JpegRelease("imagenet-c", "imagenet", 1, "ImageNet-C",
                                 (jpeg_csets.Archive("weather.tar", "0" * 32, ("fog", "snow")),))
    monkeypatch.setitem(jpeg_csets.RELEASES, "imagenet-c", bad)
    with pytest.raises(RobenchError, match="checksum mismatch"):
        jpeg_csets.download("imagenet-c")
    assert not (data_dir() / "ImageNet-C" / "fog").exists()
