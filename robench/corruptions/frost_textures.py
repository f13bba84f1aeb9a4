"""The frost photographs behind the frost corruption, and a procedural stand-in for offline use.

The generator blends crops of five photographs (frost1.png .. frost5.jpg; frost6 is never drawn).
They are not ours to ship, so they are fetched on first use from their public source,
hendrycks/robustness on GitHub, md5-verified and cached under `<data dir>/frost/`. Decoding uses
Pillow once per process (not on the hot path); the shrunk textures are cached per device.

Offline and with no cached copy, a deterministic procedural frost (smooth clouds plus bright
needle-like crystals, tinted and scaled to each photograph's colour mean and contrast) stands in,
with one warning line on stderr. `texture_source()` says which one was used, so results can record it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from robench.errors import RobenchError

SOURCE = "hendrycks/robustness"
PROCEDURAL = "procedural"
_URL = "https://raw.githubusercontent.com/hendrycks/robustness/master/ImageNet-C/create_c/{}"

# name, md5, bytes, (height, width) of the decoded photograph.
FILES = (
    ("frost1.png", "6ead634ace1f366d77e87078b465863c", 1_199_930, (600, 900)),
    ("frost2.png", "98f0d2b1d74a048d3bc9c7ecfd886939", 299_002, (315, 560)),
    ("frost3.png", "b3ed8eb147824261888e730f916c0d8b", 299_002, (315, 560)),
    ("frost4.jpg", "d70b9d6aa0b1fe7bd8133b113787e078", 36_734, (350, 527)),
    ("frost5.jpg", "50984ae2c871b7df2c28f1d71ca460a0", 155_150, (495, 660)),
)

# Colour mean and standard deviation (RGB, 0..255) of each photograph after the 0.2 shrink: the
# procedural stand-in is scaled to these so that frost keeps its strength when offline.
_STATS = (
    ((77.5, 149.0, 165.7), (26.8, 16.4, 15.3)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((138.0, 153.2, 165.6), (29.0, 29.0, 30.2)),
    ((112.3, 123.3, 134.7), (44.3, 43.2, 41.6)),
)


@dataclass(frozen=True)
class TextureBank:
    """The five textures, ready to crop: zero-padded to a common size, with their true sizes."""

    textures: torch.Tensor  # (5, H_max, W_max, 3) uint8, RGB
    sizes: torch.Tensor  # (5, 2) int64: height, width of each texture


_originals: dict[Path, tuple[list[torch.Tensor], str]] = {}
_banks: dict[tuple, TextureBank] = {}
_procedural: list[torch.Tensor] = []  # generated once per process
_download_failed = False  # then other data dirs use only files already there (no second wait)
_warned = False


def clear_cache() -> None:
    """Forget loaded textures, a failed download and the offline warning (for tests that switch
    the data dir)."""
    global _warned, _download_failed
    _originals.clear()
    _banks.clear()
    _warned = _download_failed = False


def _data_dir() -> Path:
    from robench.data.download import data_dir

    return data_dir()


def _decode(path: Path) -> torch.Tensor:
    """A photograph as uint8 (H, W, 3) RGB; any alpha channel is dropped, as cv2.imread does."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3)


def _fetch_all(folder: Path) -> list[torch.Tensor]:
    from robench.data.download import fetch

    paths = [fetch(_URL.format(name), folder / name, md5, f"frost texture {name}", size) for name, md5, size, _ in FILES]
    return [_decode(p) for p in paths]


def _load() -> tuple[list[torch.Tensor], str]:
    """The full-size photographs (or stand-ins) for the current data dir, loaded once."""
    global _warned, _download_failed
    key = _data_dir()
    if key not in _originals:
        folder = key / "frost"
        try:
            if _download_failed and not all((folder / name).exists() for name, *_ in FILES):
                raise RobenchError("a download already failed in this process")
            _originals[key] = (_fetch_all(folder), SOURCE)
        except (RobenchError, ImportError, OSError) as e:
            _download_failed = True
            if not _warned:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                print(
                    f"robench: warning: frost textures unavailable ({reason}); using a procedural "
                    f"stand-in, so frost results are not comparable to CIFAR-10-C",
                    file=sys.stderr,
                )
                _warned = True
            if not _procedural:
                _procedural.extend(procedural_textures())
            _originals[key] = (_procedural, PROCEDURAL)
    return _originals[key]


def texture_source() -> str:
    """'hendrycks/robustness' when the real photographs are used, else 'procedural'."""
    return _load()[1]


def _shrink(texture: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Shrink a photograph for an h x w image: by 0.2 at 32 px (exactly [2::5, 2::5], which is what
    cv2.resize(fx=0.2) computes), by 0.2 * min(h, w) / 32 otherwise, and never below (h + 1, w + 1)
    so that a window of h x w has at least one start position per axis."""
    height, width = texture.shape[:2]
    if min(h, w) == 32:
        sub = texture[2::5, 2::5]
        if sub.shape[0] > h and sub.shape[1] > w:
            return sub.contiguous()
    factor = max(0.2 * min(h, w) / 32, (h + 1) / height, (w + 1) / width)
    size = (max(h + 1, round(height * factor)), max(w + 1, round(width * factor)))
    x = texture.permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()


def texture_bank(h: int, w: int, device) -> TextureBank:
    """The textures for h x w images on `device` (built once per size and device)."""
    originals, _ = _load()
    key = (_data_dir(), h, w, str(device))
    if key not in _banks:
        shrunk = [_shrink(t, h, w) for t in originals]
        height = max(t.shape[0] for t in shrunk)
        width = max(t.shape[1] for t in shrunk)
        textures = torch.zeros((len(shrunk), height, width, 3), dtype=torch.uint8)
        for i, t in enumerate(shrunk):
            textures[i, : t.shape[0], : t.shape[1]] = t
        sizes = torch.tensor([t.shape[:2] for t in shrunk], dtype=torch.int64)
        _banks[key] = TextureBank(textures.to(device), sizes.to(device))
    return _banks[key]


# ---- procedural stand-in ---------------------------------------------------------------------


def _smooth_noise(generator: torch.Generator, height: int, width: int, cell: float = 320.0, octaves: int = 6) -> torch.Tensor:
    """Fractal value noise (H, W), zero mean and unit std: octaves of upsampled random grids whose
    cells are `cell`, cell/2, ... pixels wide (a 32-px crop spans 160 px of a photograph)."""
    out = torch.zeros(height, width)
    for octave in range(octaves):
        size = cell / 2**octave
        grid = torch.randn((1, 1, math.ceil(height / size) + 1, math.ceil(width / size) + 1), generator=generator)
        layer = F.interpolate(grid, scale_factor=size, mode="bicubic", align_corners=False)[0, 0, :height, :width]
        out += layer * 0.6**octave
    return (out - out.mean()) / out.std()


def _crystals(generator: torch.Generator, height: int, width: int, count: int) -> torch.Tensor:
    """Bright needle crystals (H, W) in [0, 1]: straight strokes with side branches at +-60 degrees,
    rasterised by scattering points along each stroke."""
    image = torch.zeros(height * width)
    scale = min(height, width)
    starts = torch.rand((count, 2), generator=generator) * torch.tensor([height, width])
    angles = torch.rand(count, generator=generator) * math.pi
    lengths = scale * (0.02 + 0.10 * torch.rand(count, generator=generator) ** 2)
    strokes = [(starts, angles, lengths)]
    # One generation of branches: from a random point on each stroke, shorter, turned by +-60 degrees.
    along = torch.rand(count, generator=generator)
    turn = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0) * math.pi / 3
    roots = starts + (along * lengths)[:, None] * torch.stack([torch.sin(angles), torch.cos(angles)], 1)
    strokes.append((roots, angles + turn, lengths * 0.5))
    for origin, angle, length in strokes:
        t = torch.linspace(0, 1, 64)[None, :] * length[:, None]  # (count, 64) distance along
        rows = (origin[:, :1] + t * torch.sin(angle)[:, None]).round().long()
        cols = (origin[:, 1:] + t * torch.cos(angle)[:, None]).round().long()
        keep = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        brightness = (0.5 + 0.5 * torch.rand((count, 1), generator=generator)).expand_as(t)
        image.index_put_((rows[keep] * width + cols[keep],), brightness[keep], accumulate=True)
    image = image.view(1, 1, height, width).clamp(max=1.5)
    blur = torch.tensor([0.25, 0.5, 0.25])
    image = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), (blur[:, None] * blur[None, :])[None, None])
    return image[0, 0]


def procedural_textures() -> list[torch.Tensor]:
    """Five deterministic frost-like textures (uint8 (H, W, 3) RGB) of the photographs' sizes, with
    each photograph's mean colour and contrast."""
    textures = []
    for i, ((_, _, _, (height, width)), (mean, std)) in enumerate(zip(FILES, _STATS)):
        generator = torch.Generator().manual_seed(1000 + i)
        clouds = _smooth_noise(generator, height, width)
        crystals = _crystals(generator, height, width, count=height * width // 60)
        grain = torch.randn((height, width), generator=generator)
        pattern = 0.6 * clouds + 1.5 * crystals + 0.4 * grain
        pattern = (pattern - pattern.mean()) / pattern.std()
        mean_t = torch.tensor(mean).view(1, 1, 3)
        std_t = torch.tensor(std).view(1, 1, 3)
        rgb = mean_t + std_t * pattern[:, :, None]
        textures.append(rgb.round().clamp(0, 255).to(torch.uint8))
    return textures
