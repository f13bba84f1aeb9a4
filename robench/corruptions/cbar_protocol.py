"""CIFAR-10-C-bar's facts: its 10 corruptions, their 5 magnitudes, and how generated sets are seeded.

CIFAR-10-C-bar (Mintun et al., 2021, facebookresearch/augmentation-corruption) has no released
files, only its generator (`imagenet_c_bar/make_cifar10_c_bar.py`). It applies each corruption at
the five magnitudes of `imagenet_c_bar/cifar10_c_bar.csv` (the table below, in the csv's row
order, which is the order the generator writes the files in). The repository has no CIFAR-100
table: CIFAR-100-C-bar is the same generator and table run on CIFAR-100's test set.

Severity s (1..5) of robench is the s-th magnitude of a row. Generated sets are seeded like the
-C sets (docs/protocol.md): chunk k of (corruption, severity) gets `chunk_seed(seed, corruption,
severity, k)` below, a hash namespaced apart from the -C one, so no C-bar chunk shares a -C seed.
Importing this module imports no torch (report and table tools use it).
"""

from __future__ import annotations

import hashlib

from robench.corruptions.protocol import CHUNK, SEVERITIES

BENCHMARK = "c-bar"
IMAGE_SIZE = 32  # the table is CIFAR's (im_size=32); ImageNet-C-bar has its own table and sizes
GENERATOR = "facebookresearch/augmentation-corruption imagenet_c_bar/ (cifar10_c_bar.csv)"

# name -> the magnitudes ("severity" argument of the generator's Transform) of severities 1..5.
MAGNITUDES = {
    "blue_noise_sample": (0.7, 1.4, 2.1, 3.5, 4.2),
    "checkerboard_cutout": (1.0, 2.0, 3.0, 4.0, 5.0),
    "inverse_sparkles": (1.0, 1.5, 2.5, 4.5, 5.0),
    "pinch_and_twirl": (5.5, 6.0, 6.5, 8.5, 10.0),
    "ripple": (5.5, 6.0, 6.5, 7.5, 8.0),
    "brownish_noise": (2.5, 4.0, 5.5, 6.5, 7.0),
    "circular_motion_blur": (2.8, 3.6, 4.4, 5.2, 6.0),
    "lines": (0.5, 1.0, 1.5, 2.0, 2.5),
    "sparkles": (0.7, 3.5, 5.6, 6.3, 7.0),
    "transverse_chromatic_abberation": (1.0, 2.0, 5.0, 9.0, 10.0),  # sic: the generator's spelling
}
CBAR_CORRUPTIONS = tuple(MAGNITUDES)
# The generator draws no random numbers for this one.
DETERMINISTIC = frozenset({"circular_motion_blur"})
SHORT_NAMES = {
    "blue_noise_sample": "bluesample", "checkerboard_cutout": "checker", "inverse_sparkles": "invsparkle",
    "pinch_and_twirl": "pinch", "ripple": "ripple", "brownish_noise": "brownish", "circular_motion_blur": "circmotion",
    "lines": "lines", "sparkles": "sparkles", "transverse_chromatic_abberation": "tca",
}

__all__ = ["BENCHMARK", "CBAR_CORRUPTIONS", "CHUNK", "MAGNITUDES", "SEVERITIES", "chunk_seed", "magnitude"]


def magnitude(name: str, severity: int) -> float:
    """The generator's magnitude of `name` at severity 1..5."""
    return MAGNITUDES[name][severity - 1]


def chunk_seed(seed: int, corruption: str, severity: int, chunk_index: int) -> int:
    """The seed of chunk `chunk_index` (images [k * CHUNK, (k + 1) * CHUNK)) of one C-bar cell: the
    -C recipe with a BLAKE2b personalisation of its own, so the two families never share a stream."""
    digest = hashlib.blake2b(f"{seed}/{corruption}/{severity}/{chunk_index}".encode(), digest_size=8,
                             person=b"robench-c-bar").digest()
    return int.from_bytes(digest, "little") >> 1  # non-negative int63 for torch.Generator
