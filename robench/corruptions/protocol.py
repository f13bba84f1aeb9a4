"""The corruption protocol: which corruptions and severities exist, how they are named and
selected, and how generated corruptions are seeded. Every other module reads these facts here.

Reproducibility contract of generated C-sets (docs/protocol.md): the test set is cut into fixed
chunks of CHUNK images by global index, and chunk k of (corruption, severity) is corrupted with
its own seed `chunk_seed(seed, corruption, severity, k)`. Image i is therefore corrupted
identically whatever the batch size, the number of processes, or whether `robench eval` or
`robench data generate` draws it.

Importing this module imports no torch (report and other table tools use it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from robench.errors import RobenchError

SEVERITIES = (1, 2, 3, 4, 5)
# The official order: 15 standard corruptions (mCE is their mean), then the 4 extra ones.
STANDARD = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
CORRUPTIONS = STANDARD + EXTRA
# The official generator draws no random numbers for these.
DETERMINISTIC = frozenset({"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
                           "gaussian_blur", "saturate"})
# Column headers of the leaderboards.
SHORT_NAMES = {
    "gaussian_noise": "gauss", "shot_noise": "shot", "impulse_noise": "impulse", "defocus_blur": "defocus",
    "glass_blur": "glass", "motion_blur": "motion", "zoom_blur": "zoom", "snow": "snow", "frost": "frost",
    "fog": "fog", "brightness": "bright", "contrast": "contrast", "elastic_transform": "elastic",
    "pixelate": "pixel", "jpeg_compression": "jpeg", "speckle_noise": "speckle", "gaussian_blur": "gblur",
    "spatter": "spatter", "saturate": "saturate",
}
CORRUPTION_SETS = {"all": CORRUPTIONS, "standard": STANDARD, "extra": EXTRA, "none": ()}
SOURCES = ("auto", "official", "generated")  # where corrupted test images come from (auto: official when present)
CHUNK = 500  # images per independently seeded chunk; generated batches are whole chunks


@dataclass(frozen=True)
class Protocol:
    """One corruption generator's full parameter table at its resolution (docs/faithfulness.md).

    `size`: the square side the table is written for (None: any size); `storage`: what the
    generator did to every corrupted image before release (`jpeg85`: a PIL JPEG of quality 85),
    None when it kept the arrays; `generator`: where the table comes from."""

    name: str
    size: int | None
    storage: str | None
    generator: str


PROTOCOLS = {p.name: p for p in (
    Protocol("cifar10-c", 32, None, "hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py"),
    Protocol("tiny-imagenet-c", 64, "jpeg85", "hendrycks/robustness ImageNet-C/create_c/make_tinyimagenet_c.py"),
    Protocol("imagenet-c", 224, "jpeg85", "hendrycks/robustness ImageNet-C/create_c/make_imagenet_c.py"),
    Protocol("imagenet-c-299", 299, "jpeg85", "hendrycks/robustness ImageNet-C/create_c/make_imagenet_c_inception.py"),
    # robench's own: CIFAR-10-C's table with every pixel-sized parameter times min(H, W) / 32.
    Protocol("scaled", None, None, "robench: cifar10-c's table, pixel sizes scaled by min(H, W) / 32"),
)}
# The table "scaled" reads (it differs from it only in the size factor).
SCALED_FROM = "cifar10-c"


def default_protocol(height: int, width: int) -> str:
    """The official protocol written for H x W images; other sizes must name one (never silently scaled)."""
    for protocol in PROTOCOLS.values():
        if protocol.size is not None and (height, width) == (protocol.size, protocol.size):
            return protocol.name
    official = ", ".join(f"{p.name} ({p.size} px)" for p in PROTOCOLS.values() if p.size)
    raise RobenchError(f"no official corruption protocol is written for {height}x{width} images ({official}); "
                       f"resize them, or choose robench's own size-scaled table with --protocol scaled")


def check_protocol_name(name: str) -> str:
    """`name` if it is "auto" or a protocol, else the one-line error listing the choices."""
    if name != "auto" and name not in PROTOCOLS:
        raise RobenchError(f"unknown --protocol '{name}'; choose one of: auto, {', '.join(PROTOCOLS)}")
    return name


def check_protocol(name: str | None, height: int, width: int) -> str:
    """The protocol for H x W images: `name` checked against their size, or the size's default."""
    if name is None or check_protocol_name(name) == "auto":
        return default_protocol(height, width)
    size = PROTOCOLS[name].size
    if size is not None and (height, width) != (size, size):
        raise RobenchError(f"protocol {name} is written for {size}x{size} images, these are {height}x{width}; "
                           f"resize them, or use --protocol scaled (robench's own size-scaled table)")
    return name


def pick(table: Mapping[str, Sequence], protocol: str, severity: int):
    """A corruption's parameters at `severity` from its per-protocol table ("scaled" reads cifar10-c's)."""
    return table[SCALED_FROM if protocol == "scaled" else protocol][severity - 1]


def short_name(corruption: str) -> str:
    """The leaderboard header of a corruption (its own name when it has no short one)."""
    return SHORT_NAMES.get(corruption, corruption)


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise RobenchError(f"severity must be one of {SEVERITIES[0]}..{SEVERITIES[-1]}, got {severity!r}")
    return severity


def parse_corruptions(spec: str) -> list[str]:
    """'all' | 'standard' | 'extra' | 'none' | 'name,name,...' -> names in the official order."""
    spec = spec.strip()
    if spec in CORRUPTION_SETS:
        return list(CORRUPTION_SETS[spec])
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise RobenchError(f"unknown corruption '{(unknown or [spec])[0]}' in --corruptions; use "
                           f"{', '.join(CORRUPTION_SETS)} or names from: {', '.join(CORRUPTIONS)}")
    return [c for c in CORRUPTIONS if c in names]


def parse_severities(spec: str) -> list[int]:
    """'1-5' | '3' | '1,5' | '2-3,5' -> sorted severities."""
    low_limit, high_limit = SEVERITIES[0], SEVERITIES[-1]
    usage = (f"bad --severities '{spec}'; use a range like {low_limit}-{high_limit}, a list like "
             f"{low_limit},{high_limit}, or one value in {low_limit}..{high_limit}")
    out: set[int] = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise RobenchError(usage)
        low, high = int(match[1]), int(match[2] or match[1])
        if low not in SEVERITIES or high not in SEVERITIES:
            raise RobenchError(usage)
        if low > high:
            raise RobenchError(f"bad --severities '{spec}': range {low}-{high} is empty")
        out.update(range(low, high + 1))
    return sorted(out)


def chunk_seed(seed: int, corruption: str, severity: int, chunk_index: int) -> int:
    """The seed of chunk `chunk_index` (images [k * CHUNK, (k + 1) * CHUNK)) of one cell."""
    digest = hashlib.blake2b(f"{seed}/{corruption}/{severity}/{chunk_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # non-negative int63 for torch.Generator
