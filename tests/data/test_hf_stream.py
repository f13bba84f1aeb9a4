"""hf-stream:<repo-id>: a Hugging Face split streamed into an on-disk cache, offline over local parquet files."""

import csv
from pathlib import Path

import formats
import numpy as np
import pytest
import torch
from cli_calls import invoke, one_line_error

datasets = pytest.importorskip("datasets")

from robench.data import hf_stream, load_split  # noqa: E402
from robench.errors import RobenchError  # noqa: E402

COLUMNS = dict(image_column="picture", label_column="category")


@pytest.fixture(scope="module")
def hfset(tmp_path_factory) -> Path:
    return formats.hf_parquet_dataset(tmp_path_factory.mktemp("hf") / "hfset", n_train=40, n_test=30, size=32)


def parquet_split(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """A local dataset whose test split has images of the given (width, height) sizes."""
    rng = np.random.default_rng(1)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])})
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for w, h in sizes]
    from PIL import Image

    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in images], "label": [k % 2 for k in
                                                                                             range(len(sizes))]},
                                    features=features)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    return folder


def stream(folder, tmp_path, **options):
    return load_split(f"hf-stream:{folder}", False, cache_dir=tmp_path / "cache", chunk=8, **COLUMNS, **options)


def test_labels_order_and_images_equal_the_in_memory_loader(hfset, tmp_path):
    memory = load_split(f"hf:{hfset}", False, **COLUMNS)
    streamed = stream(hfset, tmp_path)
    assert len(streamed) == 30 and streamed.classes == ["a", "b", "c"] and streamed.num_classes == 3
    assert torch.equal(streamed.labels, memory.labels)
    assert torch.equal(streamed.read(0, 30), memory.images)
    assert torch.equal(streamed.read(5, 19), memory.images[5:19])  # across cache chunks
    assert torch.equal(streamed.head(3), memory.images[:3])
    chunks = list(streamed.chunks(4, 30, chunk=10))
    assert [a for a, _ in chunks] == [4, 10, 20]
    assert torch.equal(torch.cat([images for _, images in chunks]), memory.images[4:])
    assert torch.equal(streamed.in_memory().images, memory.images)
    assert "as stored" in streamed.preprocessing
    assert torch.equal(load_split(f"hf-stream:{hfset}", False, limit=12, cache_dir=tmp_path / "c2", **COLUMNS).labels,
                       memory.labels[:12])


def test_memory_is_one_chunk_while_building(hfset, tmp_path, monkeypatch):
    """The builder writes each chunk before it pulls the next chunk's first row."""
    written, held = [0], []
    real_open, real_save = hf_stream._open, hf_stream._save_atomic

    def counting(rows):
        for k, row in enumerate(rows):
            held.append(k + 1 - written[0])  # rows pulled and not yet on disk, this one included
            yield row

    def opened(*args):
        source = real_open(*args)
        source.items = counting(source.items)
        return source

    def save(path, array):
        real_save(path, array)
        if not path.name.endswith(".labels.npy"):
            written[0] += array.shape[0]

    monkeypatch.setattr(hf_stream, "_open", opened)
    monkeypatch.setattr(hf_stream, "_save_atomic", save)
    stream(hfset, tmp_path)
    assert written[0] == 30 and max(held) == 8


def test_a_second_open_reads_the_cache_without_the_dataset(hfset, tmp_path, monkeypatch):
    first = stream(hfset, tmp_path)

    def offline(*args, **kwargs):
        raise AssertionError("the dataset was opened again")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    again = stream(hfset, tmp_path)
    assert again.folder == first.folder and torch.equal(again.labels, first.labels)
    assert torch.equal(again.read(0, 30), first.read(0, 30))


def test_a_killed_build_leaves_whole_chunks_and_the_next_one_completes(hfset, tmp_path, monkeypatch):
    real_open, real_decode = hf_stream._open, hf_stream._decode

    def killed(*args):
        source = real_open(*args)
        rows = source.items

        def until_20():
            for k, row in enumerate(rows):
                if k == 20:
                    raise KeyboardInterrupt  # the process is stopped mid-stream
                yield row

        source.items = until_20()
        return source

    monkeypatch.setattr(hf_stream, "_open", killed)
    with pytest.raises(KeyboardInterrupt):
        stream(hfset, tmp_path)
    (folder,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".npy")) == [
        "00000000-00000008.labels.npy", "00000000-00000008.npy", "00000008-00000016.labels.npy",
        "00000008-00000016.npy"]
    assert not (folder / hf_stream.META).exists() and not list(folder.glob(".*"))

    decoded = []
    monkeypatch.setattr(hf_stream, "_open", real_open)
    monkeypatch.setattr(hf_stream, "_decode", lambda value, name, index: decoded.append(index) or
                        real_decode(value, name, index))
    resumed = stream(hfset, tmp_path)
    assert decoded == list(range(16, 30))  # the kept chunks are not decoded again
    memory = load_split(f"hf:{hfset}", False, **COLUMNS)
    assert torch.equal(resumed.labels, memory.labels) and torch.equal(resumed.read(0, 30), memory.images)


def test_mixed_sizes_take_imagenet_preprocessing(tmp_path):
    first_chunk_mixed = parquet_split(tmp_path / "mixed", [(40, 30), (30, 40)] * 5)
    split = load_split(f"hf-stream:{first_chunk_mixed}", False, cache_dir=tmp_path / "cache", chunk=8)
    assert split.read(0, 10).shape == (10, 3, 224, 224) and "Resize(256)" in split.preprocessing
    # Sizes that change after the first chunk: built again, whole, with the imagenet preprocessing.
    late = parquet_split(tmp_path / "late", [(20, 20)] * 9 + [(24, 20)] + [(20, 20)] * 2)
    split = load_split(f"hf-stream:{late}", False, cache_dir=tmp_path / "cache", chunk=8)
    assert split.read(0, 12).shape == (12, 3, 224, 224) and split.labels.tolist() == [k % 2 for k in range(12)]
    with pytest.raises(RobenchError, match="images of different sizes need preprocessing imagenet"):
        load_split(f"hf-stream:{late}", False, cache_dir=tmp_path / "cache", chunk=8, preprocess="none")


def test_bad_input_is_one_line(hfset, tmp_path):
    with pytest.raises(RobenchError, match="has no column 'nope'"):
        load_split(f"hf-stream:{hfset}", False, image_column="nope", label_column="category")
    with pytest.raises(RobenchError, match="train on hf:"):
        load_split(f"hf-stream:{hfset}", True, **COLUMNS)
    empty = parquet_split(tmp_path / "empty", [])
    with pytest.raises(RobenchError, match="has no images") as error:
        load_split(f"hf-stream:{empty}", False, cache_dir=tmp_path / "cache")
    assert "\n" not in str(error.value) and not list((tmp_path / "cache").iterdir())


def errors(csv_path: Path) -> dict:
    with open(csv_path, newline="") as f:
        return {(r["corruption"], r["severity"]): r["error"] for r in csv.DictReader(f)}


def test_eval_through_the_cli_equals_the_in_memory_dataset(hfset, tmp_path):
    result = invoke("train", "--dataset", f"hf:{hfset}", "--image-column", "picture", "--label-column", "category",
                    "--model", "small-cnn", "--epochs", "1", "--batch-size", "16", "--out-dir", tmp_path,
                    "--name", "hf")
    assert result.exit_code == 0, result.output
    run = tmp_path / "hf"
    cells = ["--corruptions", "gaussian_noise,contrast", "--severities", "2", "--source", "generated"]
    assert invoke("eval", run, *cells).exit_code == 0
    result = invoke("eval", run, "--dataset", f"hf-stream:{hfset}", "--cache-dir", tmp_path / "cache", *cells)
    assert result.exit_code == 0, result.output
    memory, streamed = sorted((run / "eval").glob("*.csv"), key=lambda p: "hf-stream" in p.name)
    assert "hf-stream" in streamed.name and len(errors(streamed)) == 3
    assert errors(streamed) == errors(memory)
    one_line_error(invoke("eval", run, "--dataset", f"hf-stream:{tmp_path / 'nowhere'}", "--corruptions", "none"),
                   "cannot stream Hugging Face dataset")
