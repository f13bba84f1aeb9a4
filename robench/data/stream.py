"""A split of image files that streams: decoded and preprocessed chunk by chunk, never whole.

ImageNet's validation set is 6.4 GB of JPEGs and 7.5 GB decoded, so it is never held in memory.
A `StreamedSplit` knows its files, labels and classes up front (from the file list) and yields
uint8 (N, 3, H, W) images for index ranges in fixed chunks of CHUNK images (the corruption
protocol's seed unit), decoding the next chunks in background threads while the current one is
evaluated: at most `prefetch` + 1 chunks are alive at a time.

Decoding is torchvision's (`decode_image` on the CPU in `workers` threads, which release the GIL;
`decode_jpeg` batched on a CUDA device). Preprocessing is the protocol's (PREPROCESSING):
"imagenet" is ImageNet-C's Resize(256) + CenterCrop(224), "none" keeps the stored size (Tiny-
ImageNet's 64 px, the released C-sets' files). `decode="tensor"` resizes uint8 tensors with
torchvision's antialiased bilinear resize; `decode="pil"` runs the exact PIL path the released
ImageNet-C was made with (PIL decode, PIL bilinear resize), slower; docs/data.md gives the measured
difference between the two. An optional on-disk cache keeps each decoded chunk as a .npy file
(memory-mapped when read back), keyed by the files (path, size, mtime) and the preprocessing, so
a second evaluation skips decoding and any change of either decodes afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec (not a robench dependency);
# they are still the decoders this module is measured with (docs/data.md).
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)

from robench.corruptions.protocol import CHUNK
from robench.errors import RobenchError

# Bump when decoded pixels change for the same files and preprocessing (invalidates every cache).
CACHE_VERSION = 1


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to `resize` (bilinear), then centre-crop `crop` x `crop`; None: keep."""

    name: str
    resize: int | None
    crop: int | None
    description: str


PREPROCESSING = {p.name: p for p in (
    # hendrycks/robustness make_imagenet_c.py: trn.Resize(256) + trn.CenterCrop(224) on PIL images.
    Preprocess("imagenet", 256, 224, "Resize(256) + CenterCrop(224), bilinear"),
    Preprocess("none", None, None, "as stored (every image the same size)"),
)}
DECODERS = ("tensor", "pil")


def check_choice(value: str, choices, what: str) -> str:
    if value not in choices:
        raise RobenchError(f"unknown {what} '{value}'; choose one of: {', '.join(choices)}")
    return value


class ChunkedSplit:
    """What the eval loop reads of a test split it never holds whole: `len`, `labels`, `classes`,
    `num_classes`, `preprocessing` up front, and `read(start, stop)`; `chunks`, `head` and
    `in_memory` follow from `read`. A StreamedSplit (image files) and robench.data.hf_stream's
    split (a Hugging Face dataset streamed into an on-disk cache) are ones."""

    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def preprocessing(self) -> str:
        raise NotImplementedError

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Images [start, stop) as uint8 (n, 3, H, W)."""
        raise NotImplementedError

    def in_memory(self):
        """The whole split decoded into a data.registry.Split (a trainer's, which slices tensors)."""
        from robench.data.registry import Split

        return Split(self.read(0, len(self)), self.labels, self.num_classes, list(self.classes), self.preprocessing)

    def head(self, n: int) -> torch.Tensor:
        """Its first `n` images (e.g. for a model's trial forward pass)."""
        return self.read(0, min(n, len(self)))

    def chunks(self, start: int = 0, stop: int | None = None, chunk: int = CHUNK,
               prefetch: int = 2) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, images) for [start, stop) cut at the multiples of `chunk`, in order; the next
        `prefetch` chunks are decoded in the background while the caller works on the current one."""
        stop = len(self) if stop is None else min(stop, len(self))
        bounds = [(a, min(stop, (a // chunk + 1) * chunk)) for a in _starts(start, stop, chunk)]
        if prefetch < 1:
            for a, b in bounds:
                yield a, self.read(a, b)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="robench-prefetch") as pool:
            pending: deque = deque()
            at = 0
            try:
                while at < len(bounds) or pending:
                    while at < len(bounds) and len(pending) < prefetch + 1:
                        a, b = bounds[at]
                        pending.append((a, pool.submit(self.read, a, b)))
                        at += 1
                    a, future = pending.popleft()
                    yield a, future.result()
            finally:
                for _, future in pending:
                    future.cancel()


@dataclass
class StreamedSplit(ChunkedSplit):
    """A test split as image files: `files[i]` has label `labels[i]`; `ids[i]` names it the way
    every copy of the dataset names it (`<wnid>/<file name>` for ImageNet), so a released C-set's
    cell is the same ids under another root (`rerooted`) and a subset is a list of ids."""

    files: list[Path]
    ids: list[str]
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    preprocess: str = "imagenet"
    decode: str = "tensor"
    workers: int | None = None  # decode threads; None: the CPU count
    cache_dir: Path | None = None
    device: torch.device | None = None  # decode on this CUDA device (tensor decoder, JPEG files)
    name: str = ""  # what error messages call it: the dataset or the folder

    def __post_init__(self):
        check_choice(self.preprocess, PREPROCESSING, "preprocessing")
        check_choice(self.decode, DECODERS, "decoder")
        assert len(self.files) == len(self.ids) == self.labels.shape[0]
        self._cache_key: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def preprocessing(self) -> str:
        """How the images entered robench, for run.json (as Split.preprocessing)."""
        return f"{PREPROCESSING[self.preprocess].description}; decoded by {self.decode}"

    # ------------------------------------------------------------------ views (no decoding)

    def select(self, indices: Sequence[int]) -> "StreamedSplit":
        """The images at `indices`, in that order."""
        return replace(self, files=[self.files[i] for i in indices], ids=[self.ids[i] for i in indices],
                       labels=self.labels[list(indices)].clone())

    def take(self, n: int) -> "StreamedSplit":
        return self.select(range(min(n, len(self))))

    def select_ids(self, ids: Sequence[str], what: str) -> "StreamedSplit":
        """The images named by `ids` (e.g. a fixed subset), in that order; one missing is an error."""
        where = {i: k for k, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            raise RobenchError(f"{len(missing)} images of {what} are not in {self.name} (first: {missing[0]}); "
                               f"the folder must hold the whole validation set")
        return self.select([where[i] for i in ids])

    def rerooted(self, root: Path, preprocess: str = "none", name: str | None = None) -> "StreamedSplit":
        """The same ids (and labels) under another root: a released C-set's cell folder."""
        return replace(self, files=[Path(root) / i for i in self.ids], preprocess=preprocess,
                       name=name or str(root))

    # ------------------------------------------------------------------ images

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Images [start, stop) as uint8 (n, 3, H, W), from the cache when it holds them."""
        cached = self._cache_path(start, stop)
        if cached is not None and cached.exists():
            try:
                return torch.from_numpy(np.array(np.load(cached, mmap_mode="r")))  # the chunk read from the map
            except (ValueError, OSError, EOFError):
                cached.unlink(missing_ok=True)  # a damaged cache file is decoded again
        images = decode_files(self.files[start:stop], self.preprocess, self.decode, self.workers, self.device,
                              self.name)
        if cached is not None:
            _save_atomic(cached, images.cpu().numpy())
        return images

    # ------------------------------------------------------------------ cache

    def _cache_path(self, start: int, stop: int) -> Path | None:
        if self.cache_dir is None:
            return None
        if self._cache_key is None:
            self._cache_key = self.cache_key()
        return Path(self.cache_dir) / self._cache_key / f"{start:08d}-{stop:08d}.npy"

    def cache_key(self) -> str:
        """Names the decoded pixels: the files (id, size, mtime), preprocessing and decoder."""
        digest = hashlib.sha256(json.dumps([CACHE_VERSION, self.preprocess, self.decode]).encode())
        for file, id_ in zip(self.files, self.ids):
            try:
                stat = os.stat(file)
            except OSError:
                raise RobenchError(f"missing image {file} of {self.name}; restore it or re-extract the folder") from None
            digest.update(f"{id_}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:24]


def _starts(start: int, stop: int, chunk: int) -> list[int]:
    starts, at = [], start
    while at < stop:
        starts.append(at)
        at = (at // chunk + 1) * chunk
    return starts


def _save_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise RobenchError(f"cannot write the image cache {path.parent} ({e}); free space or choose another "
                           f"cache folder") from None


# ---------------------------------------------------------------------- decoding


def decode_files(files: Sequence[Path], preprocess: str, decode: str = "tensor", workers: int | None = None,
                 device: torch.device | None = None, name: str = "") -> torch.Tensor:
    """uint8 (len(files), 3, H, W): each file decoded to RGB and preprocessed."""
    if not files:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    spec = PREPROCESSING[preprocess]
    if decode == "tensor" and device is not None and torch.device(device).type == "cuda":
        images = _decode_cuda(files, spec, torch.device(device))
    else:
        one = _one_pil if decode == "pil" else _one_tensor
        workers = max(1, min(workers or os.cpu_count() or 1, len(files)))
        if workers == 1:
            images = [one(f, spec) for f in files]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robench-decode") as pool:
                images = list(pool.map(lambda f: one(f, spec), files))
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        a, b = sorted(shapes)[:2]
        raise RobenchError(f"the images of {name or files[0].parent} differ in size ({a[2]}x{a[1]} and {b[2]}x{b[1]}) "
                           f"with preprocessing '{preprocess}'; choose --preprocess imagenet (resize and crop)")
    return torch.stack(images)


def _read_bytes(file: Path) -> torch.Tensor:
    try:
        data = Path(file).read_bytes()
    except OSError as e:
        raise RobenchError(f"cannot read image {file} ({e.strerror or e}); restore it or re-extract the folder") from None
    if not data:
        raise RobenchError(f"image {file} is empty; restore it or re-extract the folder")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _bad_image(file: Path, error: Exception) -> RobenchError:
    reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return RobenchError(f"cannot decode image {file} ({reason[:120]}); the file is truncated or not an image: "
                        f"restore it or re-extract the folder")


def _one_tensor(file: Path, spec: Preprocess) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    data = _read_bytes(file)
    try:
        image = decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as e:
        raise _bad_image(file, e) from None
    return _preprocess_tensor(image, spec)


def _preprocess_tensor(image: torch.Tensor, spec: Preprocess) -> torch.Tensor:
    """torchvision's Resize(spec.resize) (shorter side, antialiased bilinear on uint8) and
    CenterCrop(spec.crop): the same output sizes and crop offsets as on PIL images."""
    from torchvision.transforms.v2 import functional as F

    if spec.resize is not None:
        image = F.resize(image, [spec.resize], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    if spec.crop is not None:
        image = F.center_crop(image, [spec.crop])
    return image.contiguous()


def _one_pil(file: Path, spec: Preprocess) -> torch.Tensor:
    """The exact path ImageNet-C's clean images took: PIL decode, RGB, torchvision's PIL transforms."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as opened:
            image = opened.convert("RGB")
    except FileNotFoundError:
        raise RobenchError(f"cannot read image {file} (missing); restore it or re-extract the folder") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise _bad_image(file, e) from None
    return preprocess_pil(image, spec)


def preprocess_pil(image, spec: Preprocess) -> torch.Tensor:
    """An RGB PIL image through torchvision's PIL Resize(spec.resize) and CenterCrop(spec.crop), as
    uint8 (3, H, W)."""
    from torchvision.transforms import functional as F

    if spec.resize is not None:
        image = F.resize(image, spec.resize, interpolation=F.InterpolationMode.BILINEAR)
    if spec.crop is not None:
        image = F.center_crop(image, spec.crop)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _decode_cuda(files: Sequence[Path], spec: Preprocess, device: torch.device) -> list[torch.Tensor]:
    """Batched nvjpeg decode on the device, then the same tensor preprocessing there. Files that
    are not JPEG (PNG in a folder: dataset) decode on the CPU and move over."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [_read_bytes(f) for f in files]
    jpeg = [k for k, d in enumerate(data) if d[:2].tolist() == [0xFF, 0xD8]]
    images: list[torch.Tensor | None] = [None] * len(files)
    if jpeg:
        try:
            decoded = decode_jpeg([data[k] for k in jpeg], mode=ImageReadMode.RGB, device=device)
        except RuntimeError:  # find the culprit on the CPU, which names the file
            for k in jpeg:
                _one_tensor(files[k], spec)
            raise
        for k, image in zip(jpeg, decoded):
            images[k] = _preprocess_tensor(image, spec)
    for k, image in enumerate(images):
        if image is None:
            images[k] = _one_tensor(files[k], spec).to(device)
    return images
