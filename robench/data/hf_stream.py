"""`hf-stream:<repo-id>`: a Hugging Face image dataset's test split read in streaming mode.

`hf:<repo-id>` decodes a whole split into memory; this reads the split once, in order, with
`datasets.load_dataset(..., streaming=True)`, decodes it to RGB uint8 and writes it chunk by chunk
(CHUNK images, the protocol's seed unit) into an on-disk cache, collecting the labels on the way:
at most one chunk of images is held while building. Evaluation then reads the cache's memory-
mapped chunks through the same surface as an image folder (robench.data.stream.ChunkedSplit).

Preprocessing (stream.py's, PIL decode): "none" keeps the stored size, "imagenet" is ImageNet-C's
Resize(256) + CenterCrop(224); "auto" keeps the size when every image of the first chunk shares it
(as hf: decides on its first images) and otherwise, or when a later image differs, builds again with
"imagenet". The cache lives in <data dir>/hf-stream/<key> (or <--cache-dir>/<key>), keyed by the
dataset (repo-id, or a local folder's files), split, revision, columns, limit and preprocessing, so a
second evaluation never touches the dataset. Each chunk is written atomically (labels, then
images); `meta.json`, written last, marks the cache whole. A build that was killed resumes: the
stream is read again from its start, and chunks already on disk are not decoded again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robench.corruptions.protocol import CHUNK
from robench.data.download import data_dir
from robench.data.hf import IMAGE_COLUMNS, LABEL_COLUMNS, _import_datasets, _pick, _split_name
from robench.data.stream import PREPROCESSING, ChunkedSplit, _save_atomic, check_choice, preprocess_pil
from robench.errors import RobenchError

PREFIX = "hf-stream:"
# Bump when the cached pixels or the cache layout change for the same key (invalidates every cache).
CACHE_VERSION = 1
META = "meta.json"  # written last: the cache is whole
STARTED = "started.json"  # the preprocessing a build chose, so a resumed build keeps it


class _SizeChanged(Exception):
    """An image of another size than the first chunk's, under "auto": build again with "imagenet"."""


@dataclass
class HFStreamSplit(ChunkedSplit):
    """A cached, decoded split: images [a, b) are read from the chunk files that cover them."""

    folder: Path
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    chunk: int
    preprocess: str

    @property
    def num_classes(self) -> int:  # a label feature without class names: the largest label + 1
        return len(self.classes) or int(self.labels.max()) + 1

    @property
    def preprocessing(self) -> str:
        return f"{PREPROCESSING[self.preprocess].description}; decoded by pil (Hugging Face streaming, cached)"

    def take(self, n: int) -> "HFStreamSplit":
        return HFStreamSplit(self.folder, self.labels[:n].clone(), self.classes, self.chunk, self.preprocess)

    def read(self, start: int, stop: int) -> torch.Tensor:
        stop = min(stop, len(self))
        parts = []
        for a in range(start - start % self.chunk, stop, self.chunk):
            path = self.folder / _chunk_name(a, min(a + self.chunk, len(self)))
            try:
                mapped = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise RobenchError(f"the streamed-dataset cache {self.folder} is damaged ({path.name}: {e}); "
                                   f"delete that folder and evaluate again") from None
            parts.append(np.array(mapped[max(start, a) - a:stop - a]))  # copies only the rows asked for
        if not parts:
            return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
        return torch.from_numpy(np.concatenate(parts) if len(parts) > 1 else parts[0])


def _chunk_name(start: int, stop: int) -> str:
    return f"{start:08d}-{stop:08d}.npy"


def _labels_name(start: int, stop: int) -> str:
    return f"{start:08d}-{stop:08d}.labels.npy"


# ---------------------------------------------------------------------- loading


def load(name: str, train: bool, image_column: str | None = None, label_column: str | None = None,
         cache_dir=None, limit: int | None = None, preprocess: str | None = None, revision: str | None = None,
         chunk: int = CHUNK, **options) -> HFStreamSplit:
    if train:
        raise RobenchError(f"{name} streams a test split for evaluation; train on hf:{name[len(PREFIX):]}")
    given = [k for k in ("data_path", "decode", "subset") if options.get(k) is not None]
    if given:
        raise RobenchError(f"--{given[0].replace('_', '-')} does not apply to {name} (hf-stream: decodes with PIL, "
                           f"the whole split); leave it out")
    repo = name[len(PREFIX):]
    if not repo:
        raise RobenchError("hf-stream: needs a dataset: hf-stream:<repo-id> or hf-stream:/path/to/folder")
    preprocess = check_choice(preprocess or "auto", ("auto", *PREPROCESSING), "preprocessing")
    root = Path(cache_dir) if cache_dir else data_dir() / "hf-stream"
    key = _cache_key(repo, revision, image_column, label_column, limit, preprocess, chunk)
    folder = root / key
    if not (folder / META).exists():
        source = _open(repo, revision, name, image_column, label_column)
        try:
            _build(folder, source, preprocess, limit, chunk, name)
        except _SizeChanged:
            shutil.rmtree(folder, ignore_errors=True)
            _build(folder, _open(repo, revision, name, image_column, label_column), "imagenet", limit, chunk, name)
    return _open_cache(folder, name)


def _cache_key(repo: str, revision, image_column, label_column, limit, preprocess, chunk) -> str:
    """Names the cached pixels without opening the dataset: a hub repo by id and revision, a local
    folder by its files (path, size, mtime), so a changed file builds afresh."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, repo, revision, image_column, label_column, limit,
                                        preprocess, chunk]).encode())
    local = Path(repo).expanduser()
    if local.exists():
        digest.update(str(local.resolve()).encode())
        for file in sorted(p for p in local.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(local)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


@dataclass
class _Source:
    items: object  # the streamed split (an iterable of dicts)
    split: str
    image_column: str
    label_column: str
    classes: list[str]


def _open(repo: str, revision, name: str, image_column, label_column) -> _Source:
    datasets = _import_datasets()
    try:
        splits = datasets.load_dataset(repo, revision=revision, streaming=True)
    except Exception as e:  # the library raises many types for missing/offline datasets
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RobenchError(f"cannot stream Hugging Face dataset '{repo}': {message}") from None
    split_name = _split_name(list(splits.keys()), False, name)
    split = splits[split_name]
    features = split.features
    if features is None:  # some formats only know their columns once read; ask the first row
        columns = list(next(iter(split), {}).keys())
    else:
        columns = list(features.keys())
    image_col = _pick(columns, image_column, IMAGE_COLUMNS, "image", name)
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", name)
    classes = []
    if features is not None:
        classes = list(getattr(features[label_col], "names", []) or [])
        if isinstance(features[image_col], datasets.Image):  # hand over the encoded bytes: a resumed
            split = split.cast_column(image_col, datasets.Image(decode=False))  # build skips decoding
    return _Source(split, split_name, image_col, label_col, classes)


def _decode(value, name: str, index: int):
    """One stored image as an RGB PIL image: encoded bytes or a file (an Image feature read
    undecoded), a PIL image, or an array."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(value, dict):
            image = Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
        elif isinstance(value, Image.Image):
            image = value
        else:
            image = Image.fromarray(np.asarray(value))
        return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, TypeError, KeyError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise RobenchError(f"cannot decode image {index} of {name} ({reason}); check --image-column") from None


def _build(folder: Path, source: _Source, preprocess: str, limit: int | None, chunk: int, name: str) -> None:
    """Stream the split into `folder`, chunk by chunk; the chunks a killed build left are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    _remove_orphans(folder)
    # The preprocessing (and stored size) the first chunk fixed, kept by a resumed build.
    state = _read_json(folder / STARTED)
    rows, labels, at = [], [], 0

    def flush(end: int) -> None:
        nonlocal state
        start = end - len(labels)
        image_file, label_file = folder / _chunk_name(start, end), folder / _labels_name(start, end)
        if state is not None and image_file.exists() and label_file.exists():  # a killed build wrote it
            return
        decoded = [_decode(row, name, start + k) for k, row in enumerate(rows)]
        if state is None:  # the first chunk
            sizes = {im.size for im in decoded}
            chosen = preprocess if preprocess != "auto" else "none" if len(sizes) == 1 else "imagenet"
            state = {"preprocess": chosen, "size": list(decoded[0].size), "auto": preprocess == "auto"}
            _write_json(folder / STARTED, state)
        spec = PREPROCESSING[state["preprocess"]]
        if spec.resize is None:
            other = next((k for k, im in enumerate(decoded) if list(im.size) != state["size"]), None)
            if other is not None:
                if state["auto"]:
                    raise _SizeChanged
                width, height = decoded[other].size
                raise RobenchError(f"image {start + other} of {name} is {width}x{height}, the first one "
                                   f"{state['size'][0]}x{state['size'][1]}; images of different sizes need "
                                   f"preprocessing imagenet (Resize(256) + CenterCrop(224))")
        array = np.stack([preprocess_pil(im, spec).numpy() for im in decoded])
        del decoded
        _save_atomic(label_file, np.asarray(labels, dtype=np.int64))
        _save_atomic(image_file, array)  # last: a chunk is on disk when its images are

    for row in source.items:
        if limit is not None and at >= limit:
            break
        rows.append(row[source.image_column])
        labels.append(_label(row[source.label_column], name, at))
        at += 1
        if at % chunk == 0:
            flush(at)
            rows, labels = [], []
    if labels:
        flush(at)
    if at == 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RobenchError(f"the {source.split} split of {name} has no images; choose another dataset")
    _write_json(folder / META, {"n": at, "chunk": chunk, "preprocess": state["preprocess"], "classes": source.classes,
                                "split": source.split, "image_column": source.image_column,
                                "label_column": source.label_column, "version": CACHE_VERSION})


def _label(value, name: str, index: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RobenchError(f"label {index} of {name} is {value!r}, not a class number; name the label column "
                           f"with --label-column") from None


def _open_cache(folder: Path, name: str) -> HFStreamSplit:
    meta = _read_json(folder / META)
    if meta is None or meta.get("version") != CACHE_VERSION:
        raise RobenchError(f"the streamed-dataset cache {folder} is damaged; delete that folder and evaluate again")
    n, chunk = meta["n"], meta["chunk"]
    labels = [np.load(folder / _labels_name(a, min(a + chunk, n))) for a in range(0, n, chunk)]
    return HFStreamSplit(folder, torch.from_numpy(np.concatenate(labels)), list(meta["classes"]), chunk,
                         meta["preprocess"])


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _remove_orphans(folder: Path) -> None:
    """Half-written files of builds that were killed (their process is gone); a live build's stay."""
    for tmp in folder.glob(".*.partial"):
        try:
            os.kill(int(tmp.name.rsplit(".", 2)[-2]), 0)
        except (ValueError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass
