"""A contact sheet of corruptions, for eyeballing (`robench data preview`).

Layout of `preview_grid`: one row per corruption; the first column group holds the K clean
images, then one group per severity with the same K images corrupted. Images within a group are
1 px apart, groups and rows are separated by wider white gaps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from robench.corruptions.registry import corrupt
from robench.errors import RobenchError

GAP = 1  # between images of one group
GROUP_GAP = 4  # between the clean group and the severity groups, and between rows
BACKGROUND = 255


def preview_grid(
    images: torch.Tensor, names: Sequence[str], severities: Sequence[int] = (1, 2, 3, 4, 5), seed: int = 0,
    protocol: str | None = None,
) -> torch.Tensor:
    """uint8 (K, 3, H, W) -> uint8 (3, H_total, W_total) on CPU: rows = corruptions, columns = clean + severities."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise RobenchError(f"preview needs uint8 images of shape (K, 3, H, W) with K >= 1, got {images.dtype} {tuple(images.shape)}")
    if not names:
        raise RobenchError("preview needs at least one corruption name")
    k, _, h, w = images.shape
    group_w = k * w + (k - 1) * GAP
    groups = 1 + len(severities)
    width = groups * group_w + (groups - 1) * GROUP_GAP
    height = len(names) * h + (len(names) - 1) * GROUP_GAP
    grid = torch.full((3, height, width), BACKGROUND, dtype=torch.uint8)

    def paste(batch: torch.Tensor, row: int, group: int) -> None:
        top = row * (h + GROUP_GAP)
        for i, img in enumerate(batch.cpu()):
            left = group * (group_w + GROUP_GAP) + i * (w + GAP)
            grid[:, top : top + h, left : left + w] = img

    for row, name in enumerate(names):
        paste(images, row, 0)
        for group, severity in enumerate(severities, start=1):
            paste(corrupt(images, name, severity, seed=seed, protocol=protocol), row, group)
    return grid


def save_png(grid: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a uint8 (3, H, W) grid as PNG, atomically (a temporary file, then a rename)."""
    try:
        from PIL import Image
    except ImportError:  # Pillow is an optional dependency
        raise RobenchError("writing a PNG preview needs Pillow: pip install pillow") from None
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid.permute(1, 2, 0).contiguous().cpu().numpy()).save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise RobenchError(f"cannot write the preview {path}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
