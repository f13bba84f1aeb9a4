"""robench/data/stream.py: StreamedSplit's decoding, preprocessing (against torchvision's PIL
transforms), chunk order, bounded prefetch, the on-disk cache, and bad image files."""

import threading
import time
from pathlib import Path

import imagetrees
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from robench.data.stream import PREPROCESSING, StreamedSplit, decode_files
from robench.errors import RobenchError

# The tensor path (torchvision's antialiased bilinear resize of uint8 tensors) against the PIL path:
# at most 2 levels per pixel on 81 photo JPEGs (docs/data.md), 1 on these; the PIL path is exact.
TENSOR_TOLERANCE = 2


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("jpegs")
    files = [imagetrees.write_jpeg(root / f"{k}.JPEG", k) for k in range(7)]
    files.append(imagetrees.write_jpeg(root / "grey.JPEG", 99, (300, 260), mode="L"))  # ImageNet has grey JPEGs
    return files


def split_of(files, **options) -> StreamedSplit:
    return StreamedSplit(list(files), [f.name for f in files], torch.arange(len(files)) % 3, ["a", "b", "c"],
                         name="test files", **options)


def pil_reference(file: Path) -> torch.Tensor:
    """torchvision's Resize(256) + CenterCrop(224) on the PIL image: ImageNet-C's clean images."""
    image = transforms.CenterCrop(224)(transforms.Resize(256)(Image.open(file).convert("RGB")))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def test_preprocessing_matches_torchvision_pil_transforms(jpegs):
    reference = torch.stack([pil_reference(f) for f in jpegs])
    pil = decode_files(jpegs, "imagenet", "pil", workers=2)
    tensor = decode_files(jpegs, "imagenet", "tensor", workers=2)
    assert pil.shape == tensor.shape == (len(jpegs), 3, 224, 224) and pil.dtype == torch.uint8
    assert torch.equal(pil, reference)  # the exact path
    assert (tensor.int() - reference.int()).abs().max() <= TENSOR_TOLERANCE


def test_no_preprocessing_keeps_the_stored_size_and_rejects_mixed_sizes(jpegs, tmp_path):
    small = [imagetrees.write_jpeg(tmp_path / f"{k}.JPEG", k, (64, 64)) for k in range(3)]
    out = decode_files(small, "none", workers=1)
    assert out.shape == (3, 3, 64, 64)
    reference = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy()).permute(2, 0, 1)
                             for f in small])
    assert (out.int() - reference.int()).abs().max() <= 1  # the same libjpeg, maybe another IDCT
    with pytest.raises(RobenchError, match="differ in size"):
        decode_files(jpegs[:3], "none", workers=1)


def test_chunks_come_in_order_cut_at_chunk_multiples(jpegs):
    split = split_of(jpegs)
    whole = split.read(0, len(split))
    got = list(split.chunks(1, 8, chunk=3, prefetch=2))
    assert [start for start, _ in got] == [1, 3, 6]
    assert [images.shape[0] for _, images in got] == [2, 3, 2]
    assert torch.equal(torch.cat([images for _, images in got]), whole[1:8])
    assert torch.equal(torch.cat([im for _, im in split.chunks(0, None, chunk=3, prefetch=0)]), whole)


def test_prefetch_is_bounded(jpegs, monkeypatch):
    """While the caller holds the first chunk, at most `prefetch` more are read, never all of them."""
    split = split_of(jpegs)
    started, lock = [], threading.Lock()

    def read(start, stop):
        with lock:
            started.append(start)
        return torch.zeros(stop - start, 3, 2, 2, dtype=torch.uint8)

    monkeypatch.setattr(split, "read", read)
    stream = split.chunks(0, 8, chunk=1, prefetch=2)
    next(stream)
    time.sleep(0.2)  # give the background reader every chance to run ahead
    assert len(started) == 3  # the one handed out and two ahead
    assert sorted(start for start, _ in stream) == list(range(1, 8))


def test_cache_is_reused_and_keyed_by_files_and_preprocessing(jpegs, tmp_path, monkeypatch):
    files = [tmp_path / f.name for f in jpegs[:4]]
    for src, dst in zip(jpegs, files):
        dst.write_bytes(src.read_bytes())
    split = split_of(files, cache_dir=tmp_path / "cache")
    first = split.read(0, 4)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    import robench.data.stream as stream

    monkeypatch.setattr(stream, "decode_files", lambda *a, **k: pytest.fail("decoded although cached"))
    assert torch.equal(split_of(files, cache_dir=tmp_path / "cache").read(0, 4), first)
    monkeypatch.undo()
    key = split.cache_key()
    assert split_of(files, cache_dir=tmp_path / "cache", decode="pil").cache_key() != key  # another decoder
    assert split_of(files, cache_dir=tmp_path / "cache", preprocess="none").cache_key() != key
    imagetrees.write_jpeg(files[2], 1234)  # a changed file
    assert split_of(files, cache_dir=tmp_path / "cache").cache_key() != key


def test_a_truncated_jpeg_is_one_line_naming_it(jpegs, tmp_path):
    bad = tmp_path / "cut.JPEG"
    bad.write_bytes(jpegs[0].read_bytes()[:2000])
    for decode in ("tensor", "pil"):
        with pytest.raises(RobenchError, match="cut.JPEG.*truncated or not an image") as error:
            split_of([jpegs[1], bad], decode=decode).read(0, 2)
        assert "\n" not in str(error.value)


def test_a_missing_file_is_one_line(jpegs, tmp_path):
    with pytest.raises(RobenchError, match="gone.JPEG"):
        split_of([jpegs[0], tmp_path / "gone.JPEG"]).read(0, 2)


def test_views_select_take_and_reroot_without_decoding(jpegs, tmp_path):
    split = split_of(jpegs)
    picked = split.select([5, 0, 2])
    assert picked.ids == [jpegs[5].name, jpegs[0].name, jpegs[2].name]
    assert picked.labels.tolist() == [2, 0, 2]
    assert len(split.take(3)) == 3 and split.take(100).ids == split.ids
    with pytest.raises(RobenchError, match="2 images of the subset are not in test files"):
        split.select_ids([jpegs[0].name, "x.JPEG", "y.JPEG"], "the subset")
    moved = split.rerooted(tmp_path / "elsewhere")
    assert moved.files[0] == tmp_path / "elsewhere" / jpegs[0].name and moved.preprocess == "none"
    assert "Resize(256)" in split.preprocessing and set(PREPROCESSING) == {"imagenet", "none"}
