"""Writing a generated C-set in the layout ImageNet-C and Tiny-ImageNet-C are released in:

    <out>/<corruption>/<severity>/<class>/<file>.JPEG

one JPEG per test image, saved as the official generators saved theirs (Pillow, quality 85,
optimize=True): that save is the protocols' storage step, so reading these files back gives the
pixels of `robench eval --source generated` with the storage step on (the same chunk seeds).

Each (corruption, severity) folder is written under a hidden temporary name and renamed when
complete, so a killed generation resumes at the first folder that is missing, and a folder that
exists is whole.
"""

from __future__ import annotations

import io
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from robench.corruptions.protocol import CHUNK, SEVERITIES, chunk_seed
from robench.corruptions.registry import corrupt_chunks
from robench.errors import RobenchError

JPEG_QUALITY = 85  # the scripts' `save(path, quality=85, optimize=True)`


def encode(image: np.ndarray) -> bytes:
    """One uint8 (H, W, 3) image as the official generators stored it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def output_names(files: Sequence[str]) -> list[str]:
    """`class/name.ext` -> `class/name.JPEG` (the released sets name every file .JPEG); two inputs
    that would land on one output are refused."""
    names = [str(Path(f).with_suffix(".JPEG")) for f in files]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        clash = next(n for n in names if n in seen or seen.add(n))
        raise RobenchError(f"two images would both be written as {clash}; rename one of them")
    return names


def write_jpeg_tree(chunk: Callable[[int, int], torch.Tensor], files: Sequence[str], out: Path,
                    corruptions: Sequence[str], seed: int, protocol: str, device: torch.device,
                    frost: str = "auto", on_cell=None, threads: int | None = None) -> Path:
    """Corrupt test images [0, len(files)) with robench's engine and write them as JPEG files.

    `chunk(start, stop)` returns uint8 (stop - start, 3, H, W) images (an in-memory split's slice or
    a streamed source's decoded chunk); `files` are the images' paths relative to their dataset
    folder (`class/name.ext`). The images are corrupted without the storage step, which the JPEG
    save itself is."""
    out = Path(out)
    names = output_names(files)
    n = len(names)
    for folder in {str(Path(name).parent) for name in names}:
        if folder in ("", "."):
            raise RobenchError("the released layout needs a class folder per image; the dataset gave a bare file name")
    pool = ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1))  # Pillow's encoder releases the GIL
    try:
        for name in corruptions:
            for severity in SEVERITIES:
                final = out / name / str(severity)
                if final.is_dir():
                    continue  # written whole by an earlier run
                partial = out / name / f".{severity}.partial"
                shutil.rmtree(partial, ignore_errors=True)
                for folder in sorted({str(Path(f).parent) for f in names}):
                    (partial / folder).mkdir(parents=True, exist_ok=True)
                for start in range(0, n, CHUNK):
                    stop = min(n, start + CHUNK)
                    images = chunk(start, stop).to(device)
                    seeds = [chunk_seed(seed, name, severity, start // CHUNK)]
                    corrupted = corrupt_chunks(images, name, severity, seeds, CHUNK, frost=frost, protocol=protocol,
                                               storage=False)
                    arrays = corrupted.permute(0, 2, 3, 1).cpu().numpy()
                    for file, data in zip(names[start:stop], pool.map(encode, arrays)):
                        (partial / file).write_bytes(data)
                os.replace(partial, final)
                if on_cell:
                    on_cell(name, severity)
    finally:
        pool.shutdown()
    return out
