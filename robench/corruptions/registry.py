"""The corruption registry (name -> batched function) and the `corrupt()` entry point."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from robench.corruptions import draws
from robench.corruptions.jpeg import jpeg_round_trip
from robench.corruptions.protocol import CHUNK, CORRUPTIONS, PROTOCOLS, check_protocol, check_severity, chunk_seed
from robench.images import as_batch, generator_for
from robench.registry import Entry, Registry

# Each function is fn(images uint8 (N, 3, H, W), severity, generator, protocol, **options) -> uint8,
# same shape; `generator` is a torch.Generator or a draws.Streams (one generator per chunk of
# images); `protocol` names the parameter table (protocol.PROTOCOLS), already checked against H x W.
# The modules below fill the registry with their decorators when it is first looked in.
FUNCTIONS = Registry("corruption", modules=tuple(
    f"robench.corruptions.{m}" for m in ("noise", "blur", "snow", "weather", "spatter", "elastic", "digital")),
    order=CORRUPTIONS)

# On the CPU a batch is corrupted in pieces of about this many pixels per channel (256 images of
# 32x32): the float64 intermediates stay in cache and skip the page faults of large fresh
# allocations, 3-15x faster than one 10,000-image call. GPUs take the batch whole.
CPU_PIECE_PIXELS = 1 << 18
# On a GPU one eval corruption call covers up to this many pixels per channel (8,192 images of
# 32x32, 16 chunks): few enough launches per image to fill the device, while the float64
# intermediates of one call stay near 200 MB each. Chosen, not yet tuned on a GPU.
GPU_CALL_PIXELS = 1 << 23


def get_corruption(name: str) -> Entry:
    """The registry entry of a corruption (its function is `.factory`)."""
    return FUNCTIONS.get(name)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int | None = None, *,
            generator: torch.Generator | None = None, frost: str = "auto", protocol: str | None = None,
            storage: bool = True) -> torch.Tensor:
    """Corrupt images at severity 1..5, on their device.

    `images` follow the table in `robench.images` (uint8 or float in [0, 1], a batch or one image;
    the result has the input's convention). Every image draws its own randomness from `generator`,
    or from a new one seeded with `seed` (0 when neither is given), so the result is a pure function
    of (images, name, severity, seed, frost, device type). `frost` chooses the frost textures:
    "official" (the five photographs; an error when they cannot be found), "procedural" (a
    stand-in that needs no files) or "auto" (official when available); `resolve_frost` says which
    one "auto" gives.

    `protocol` chooses the generator whose table is used (`protocol.PROTOCOLS`); by default the
    official one written for the images' size (32: cifar10-c, 64: tiny-imagenet-c, 224: imagenet-c;
    other sizes must name one, e.g. "scaled"). `storage=False` leaves out the protocol's storage
    step (imagenet-c and tiny-imagenet-c store every image as a quality-85 JPEG).
    """
    batch = as_batch(images, "corrupt()")
    check_severity(severity)
    protocol = check_protocol(protocol, *batch.images.shape[-2:])
    FUNCTIONS.get(name)  # an unknown name fails before anything else
    if generator is None and seed is None:
        seed = 0
    generator = generator_for(batch.images.device, generator, seed, "corrupt()")
    if batch.images.shape[0] == 0:
        return batch.restore(batch.images.clone())
    return batch.restore(_run(batch.images, name, severity, generator, frost, protocol, storage))


def corrupt_chunks(images: torch.Tensor, name: str, severity: int, seeds: Sequence[int], chunk: int,
                   frost: str = "auto", protocol: str | None = None, storage: bool = True) -> torch.Tensor:
    """uint8 images (N, 3, H, W) cut into consecutive chunks of `chunk` images (the last may be
    shorter), chunk k corrupted with seed `seeds[k]`: the same as `corrupt()` per chunk,
    concatenated. On the CPU the chunks go one by one (in cache-sized pieces); on a GPU all of them
    go in one call, each chunk drawing from its own generator (draws.Streams), so a call is as
    large as the caller makes it while every image keeps the corruption its chunk gives it."""
    check_severity(severity)
    protocol = check_protocol(protocol, *images.shape[-2:])
    parts = images.split(chunk)
    if len(seeds) != len(parts):
        raise ValueError(f"{len(parts)} chunks of {chunk} images but {len(seeds)} seeds")
    generators = [generator_for(images.device, None, s, "corrupt_chunks()") for s in seeds]
    if images.device.type == "cpu" or len(parts) == 1:
        return torch.cat([_run(part, name, severity, g, frost, protocol, storage) for part, g in zip(parts, generators)])
    streams = draws.Streams(generators, [p.shape[0] for p in parts])
    return _run(images, name, severity, streams, frost, protocol, storage)


def call_images(images: torch.Tensor, at_least: int) -> int:
    """How many images a caller should hand to one corruption call: `at_least` on the CPU (which
    cuts calls into pieces anyway), up to GPU_CALL_PIXELS per channel on a GPU."""
    if images.device.type == "cpu":
        return at_least
    return max(at_least, GPU_CALL_PIXELS // (images.shape[-2] * images.shape[-1]))



def generated_batches(images: torch.Tensor, corruption: str, severity: int, seed: int, batch_size: int,
                      frost: str = "auto", offset: int = 0, protocol: str | None = None,
                      storage: bool = True) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, corrupted batch) over `images` (uint8, any device), each chunk with its own seed.
    Batches are whole chunks: batch_size rounded down to a multiple of CHUNK (at least one), and on
    a GPU raised to call_images' size, since each batch is one corruption call there
    (corrupt_chunks; callers cut it into forward passes). `images` may be a slice of the
    test set that begins at global index `offset` (a multiple of CHUNK: one rank's share), so its
    chunks get the seeds they have in the whole set."""
    if offset % CHUNK:
        raise ValueError(f"offset {offset} is not a multiple of the chunk size {CHUNK}")
    batch_size = max(CHUNK, call_images(images, batch_size) // CHUNK * CHUNK)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        seeds = [chunk_seed(seed, corruption, severity, (offset + c) // CHUNK)
                 for c in range(start, start + batch.shape[0], CHUNK)]
        yield start, corrupt_chunks(batch, corruption, severity, seeds, CHUNK, frost=frost, protocol=protocol,
                                    storage=storage)


def _run(x: torch.Tensor, name: str, severity: int, generator: draws.Source, frost: str, protocol: str,
         storage: bool) -> torch.Tensor:
    function = FUNCTIONS.get(name).factory
    options = {"textures": frost, "protocol": protocol} if name == "frost" else {"protocol": protocol}
    piece = max(1, CPU_PIECE_PIXELS // (x.shape[2] * x.shape[3]))
    if x.device.type == "cpu" and x.shape[0] > piece and isinstance(generator, torch.Generator):
        # The pieces draw from the one generator in turn, so the result is still a pure function
        # of (images, name, severity, seed).
        out = torch.cat([function(part, severity, generator, **options) for part in x.split(piece)])
    else:
        out = function(x, severity, generator, **options)
    assert out.dtype == torch.uint8 and out.shape == x.shape, name
    if storage and PROTOCOLS[protocol].storage is not None:
        out = store(out, PROTOCOLS[protocol].storage)
    return out


def store(images: torch.Tensor, step: str) -> torch.Tensor:
    """A protocol's storage step on uint8 (N, 3, H, W): `jpeg85` = what PIL's
    `save(quality=85, optimize=True)` and a read back give (optimize only rewrites the Huffman
    tables, so the pixels are those of a plain quality-85 save)."""
    if step != "jpeg85":
        raise ValueError(f"unknown storage step {step!r}")
    return jpeg_round_trip(images, 85)


def check_registry() -> None:
    """Every protocol name has a function and no function lacks a name (a test calls this)."""
    if tuple(FUNCTIONS) != CORRUPTIONS:
        raise AssertionError(f"registered corruptions {tuple(FUNCTIONS)} differ from the protocol's {CORRUPTIONS}")
