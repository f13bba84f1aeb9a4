"""The frost photographs behind the frost corruption, and a procedural stand-in, chosen explicitly.

The generator blends crops of five photographs (frost1.png .. frost5.jpg; frost6 is never drawn).
They are not ours to ship. The caller picks one of `FROST_TEXTURES`:

- "official": the five photographs, each md5-verified, looked for in this order: the cache
  `<data dir>/frost/`; an installed `imagecorruptions` package (its `frost/` folder, found without
  importing it, since importing it imports cv2, scipy and scikit-image); a download from their
  public source, hendrycks/robustness on GitHub, into the cache. If none works, a one-line
  `RobenchError` says how to get them.
- "procedural": a deterministic stand-in (smooth clouds plus bright needle-like crystals, tinted
  and scaled to each photograph's colour mean and contrast); never touches the disk or network.
- "auto": "official" when that search succeeds, else "procedural".

`resolve_frost(choice)` returns the concrete source ("official" or "procedural") for results to
record; telling the user about a fallback is the caller's job. The same choice always gives the same
textures: nothing here remembers a fallback. Only a failed download is remembered for the rest of
the process so that nobody waits for the network twice; an explicit "official" then still raises.

imagecorruptions 1.1.2 (PyPI wheel, the latest release, checked): its frost1.png .. frost5.jpg are
byte-identical to the official files (the md5s in `FILES` below), and so is its frost6.jpg.
`pip install imagecorruptions --no-deps` installs them without its heavy dependencies.

Decoding uses Pillow once per process (not on the hot path); the shrunk textures are cached per
protocol, size and device.

How each generator shrinks the photographs before cutting an H x W window (`SHRINK`): CIFAR-10-C
by 0.2, Tiny-ImageNet-C by 0.3, both with `cv2.resize(fx, fy)`'s bilinear interpolation on 8-bit
images (re-stated exactly in `cv2_resize_linear`), ImageNet-C not at all. Protocol "scaled" shrinks
by 0.2 * min(H, W) / 32 with an antialiased bilinear resize (robench's own; see `_shrink`).
"""

from __future__ import annotations

import importlib.util
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from robench.errors import RobenchError, unknown_name

FROST_TEXTURES = ("auto", "official", "procedural")
OFFICIAL = "official"
PROCEDURAL = "procedural"
PACKAGE = "imagecorruptions"  # the PyPI package whose wheel ships the photographs
_URL = "https://raw.githubusercontent.com/hendrycks/robustness/master/ImageNet-C/create_c/{}"

# name, md5, bytes, (height, width) of the decoded photograph.
FILES = (
    ("frost1.png", "6ead634ace1f366d77e87078b465863c", 1_199_930, (600, 900)),
    ("frost2.png", "98f0d2b1d74a048d3bc9c7ecfd886939", 299_002, (315, 560)),
    ("frost3.png", "b3ed8eb147824261888e730f916c0d8b", 299_002, (315, 560)),
    ("frost4.jpg", "d70b9d6aa0b1fe7bd8133b113787e078", 36_734, (350, 527)),
    ("frost5.jpg", "50984ae2c871b7df2c28f1d71ca460a0", 155_150, (495, 660)),
)

# The generators' resize factor of the photographs (None: used at full size); "scaled" has its own rule.
SHRINK = {"cifar10-c": 0.2, "tiny-imagenet-c": 0.3, "imagenet-c": None, "imagenet-c-299": None}

# Colour mean and standard deviation (RGB, 0..255) of each photograph after the 0.2 shrink: the
# procedural stand-in is scaled to these so that frost keeps its strength without the photographs.
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


# Caches that never change a result: every verified copy of a photograph has the same bytes, so
# decoded photographs are keyed by name and banks by (source, size, device).
_checked: dict[str, tuple[tuple[int, int], bool]] = {}  # path -> ((size, mtime_ns), md5 matched)
_photographs: dict[str, torch.Tensor] = {}
_procedural: list[torch.Tensor] = []
_banks: dict[tuple, TextureBank] = {}
_download_error: str | None = None  # why a download failed; not retried in this process


def clear_cache() -> None:
    """Forget the caches and a failed download (for tests)."""
    global _download_error
    _checked.clear()
    _photographs.clear()
    _procedural.clear()
    _banks.clear()
    _download_error = None


def _data_dir() -> Path:
    from robench.data.download import data_dir

    return data_dir()


def _matches(path: str, md5: str) -> bool:
    """Whether `path` is a file with the official md5. Frost looks the photographs up on every call,
    so each version of a file (size, mtime) is hashed once, and paths are plain strings (pathlib
    would cost more than the five stat()s)."""
    from robench.data.download import md5sum

    try:
        info = os.stat(path)
    except OSError:
        return False
    version = (info.st_size, info.st_mtime_ns)
    if path not in _checked or _checked[path][0] != version:
        _checked[path] = (version, stat.S_ISREG(info.st_mode) and md5sum(Path(path)) == md5)
    return _checked[path][1]


def package_frost_dirs() -> list[Path]:
    """The `frost/` folders of an installed imagecorruptions package, found without importing it."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return []
    locations = spec.submodule_search_locations if spec is not None else None
    return [Path(location) / "frost" for location in locations or ()]


def _first_match(folders: list[str], name: str, md5: str) -> str | None:
    """The first folders/name with the official md5 (a file that differs is ignored)."""
    for folder in folders:
        path = os.path.join(folder, name)
        if _matches(path, md5):
            return path
    return None


def _official_paths() -> list[str]:
    """The verified photographs, searched in order: the data-dir cache, imagecorruptions, a download.
    Raises a one-line RobenchError when they cannot all be found."""
    global _download_error
    folder = _data_dir() / "frost"
    cache = str(folder)
    found = [_first_match([cache], name, md5) for name, md5, *_ in FILES]
    if not all(found):
        # The package is looked up only when the cache lacks a file: the usual call costs 5 stat()s.
        folders = [cache] + [str(d) for d in package_frost_dirs()]
        found = [_first_match(folders, name, md5) for name, md5, *_ in FILES]
    if all(found):
        return found
    missing = [i for i, path in enumerate(found) if path is None]
    stale = [folder / FILES[i][0] for i in missing if (folder / FILES[i][0]).exists()]
    if stale:
        # fetch() keeps a file that is already there, so a wrong one must go first.
        problem = f"{stale[0]} does not match its md5; delete it"
    else:
        if _download_error is None:
            from robench.data import download

            try:
                for i in missing:
                    name, md5, size, _ = FILES[i]
                    found[i] = str(download.fetch(_URL.format(name), folder / name, md5, f"frost texture {name}", size))
                return found
            except (RobenchError, OSError) as e:
                _download_error = str(e).splitlines()[0] if str(e) else type(e).__name__
        problem = f"download failed: {_download_error}"
    raise RobenchError(
        f"frost textures: the official photographs are neither in {folder} nor in an installed "
        f"{PACKAGE} package ({problem}); run `pip install {PACKAGE} --no-deps`, copy "
        f"frost1.png..frost5.jpg into {folder}/, or use --frost procedural"
    )


def resolve_frost(choice: str) -> str:
    """The source that frost textures `choice` (one of FROST_TEXTURES) uses: "official" or
    "procedural". "official" raises a one-line RobenchError when the photographs are unavailable;
    "auto" then resolves to "procedural"."""
    if choice not in FROST_TEXTURES:
        raise unknown_name("frost textures", choice, FROST_TEXTURES)
    if choice == PROCEDURAL:
        return PROCEDURAL
    try:
        _official_paths()
    except RobenchError:
        if choice == OFFICIAL:
            raise
        return PROCEDURAL
    return OFFICIAL


def _decode(path: str) -> torch.Tensor:
    """A photograph as uint8 (H, W, 3) RGB; any alpha channel is dropped, as cv2.imread does."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3)


def _originals(source: str) -> list[torch.Tensor]:
    """The five full-size textures of a resolved source."""
    if source == PROCEDURAL:
        if not _procedural:
            _procedural.extend(procedural_textures())
        return _procedural
    for (name, *_), path in zip(FILES, _official_paths()):
        if name not in _photographs:
            _photographs[name] = _decode(path)
    return [_photographs[name] for name, *_ in FILES]


def _shrink(texture: torch.Tensor, h: int, w: int, protocol: str = "scaled") -> torch.Tensor:
    """Shrink a photograph for an h x w image as `protocol`'s generator does (`SHRINK`).

    "scaled" (robench's own): by 0.2 at 32 px (exactly [2::5, 2::5], which is what
    cv2.resize(fx=0.2) computes), by 0.2 * min(h, w) / 32 otherwise with an antialiased bilinear
    resize, and never below (h + 1, w + 1) so that a window of h x w has at least one start
    position per axis. "cifar10-c" (32 px) is the same [2::5, 2::5]."""
    if protocol in SHRINK and protocol != "cifar10-c":
        factor = SHRINK[protocol]
        return texture if factor is None else cv2_resize_linear(texture, factor)
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


_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights in 1/2048


def _linear_taps(src: int, dst: int, factor: float, columns: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's bilinear taps along one axis: source index pairs (dst, 2) and integer weights (dst, 2).

    Position (d + 0.5) / factor - 0.5 in double, rounded to float32; its fraction's weights
    1 - f and f times 2048 are each rounded (half to even) to 16-bit integers. Past an edge,
    columns use the edge pixel alone (weights 2048, 0) while rows keep their weights on clamped
    row indices (only upscaling reaches an edge)."""
    scale = 1.0 / factor
    pos = ((torch.arange(dst, dtype=torch.float64) + 0.5) * scale - 0.5).to(torch.float32)
    first = pos.floor()
    frac = pos - first
    first = first.long()
    if columns:
        frac = torch.where((first < 0) | (first >= src - 1), 0.0, frac)
        first = first.clamp(0, src - 1)
    second = (first + 1).clamp(0, src - 1)
    first = first.clamp(0, src - 1)
    one = float(1 << _COEF_BITS)
    weights = torch.stack([((1 - frac) * one).round(), (frac * one).round()], 1).long()
    return torch.stack([first, second], 1), weights


def cv2_resize_linear(image: torch.Tensor, factor: float) -> torch.Tensor:
    """cv2.resize(image, (0, 0), fx=factor, fy=factor) (INTER_LINEAR) for uint8 (H, W, C), bit-exact
    (checked against OpenCV 4.10 on the photographs and random images, factors 0.2 to 2.5), except
    at factor 0.5, where OpenCV switches to its area average.

    The output is round(W * factor) x round(H * factor) (half to even); rows are interpolated
    first with 11-bit integer weights into int32 sums, then columns as OpenCV's fixed-point
    vertical pass does: ((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2 >> 2."""
    height, width = image.shape[:2]
    out_h, out_w = round(height * factor), round(width * factor)
    cols, col_w = _linear_taps(width, out_w, factor, columns=True)
    rows, row_w = _linear_taps(height, out_h, factor, columns=False)
    x = image.to(torch.int64)
    horizontal = x[:, cols[:, 0]] * col_w[:, 0, None] + x[:, cols[:, 1]] * col_w[:, 1, None]  # (H, out_w, C)
    top, bottom = horizontal[rows[:, 0]] >> 4, horizontal[rows[:, 1]] >> 4
    b0, b1 = row_w[:, 0, None, None], row_w[:, 1, None, None]
    out = (((b0 * top) >> 16) + ((b1 * bottom) >> 16) + 2) >> 2
    return out.clamp_(0, 255).to(torch.uint8)


def texture_bank(h: int, w: int, device, textures: str = "auto", protocol: str = "scaled") -> TextureBank:
    """The textures of choice `textures` (one of FROST_TEXTURES) for h x w images on `device`,
    shrunk as `protocol`'s generator does (built once per source, protocol, size and device)."""
    source = resolve_frost(textures)
    key = (source, protocol, h, w, str(device))
    if key not in _banks:
        shrunk = [_shrink(t, h, w, protocol) for t in _originals(source)]
        height = max(t.shape[0] for t in shrunk)
        width = max(t.shape[1] for t in shrunk)
        padded = torch.zeros((len(shrunk), height, width, 3), dtype=torch.uint8)
        for i, t in enumerate(shrunk):
            padded[i, : t.shape[0], : t.shape[1]] = t
        sizes = torch.tensor([t.shape[:2] for t in shrunk], dtype=torch.int64)
        _banks[key] = TextureBank(padded.to(device), sizes.to(device))
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
