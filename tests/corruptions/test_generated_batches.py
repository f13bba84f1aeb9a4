"""generated_batches cuts a cell's images into whole CHUNK-image chunks, each corrupted with its own
chunk seed, so the corrupted images do not depend on the batch size asked for (nor on the larger
size a GPU call is raised to)."""

import pytest
import torch

from robench.corruptions import registry
from robench.corruptions.protocol import CHUNK, chunk_seed
from robench.corruptions.registry import corrupt, generated_batches

pytestmark = pytest.mark.usefixtures("one_thread")
N = 2 * CHUNK + 200  # two whole chunks and a partial one
SEED, NAME, SEVERITY = 7, "gaussian_noise", 2


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (N, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reference(images):
    """Chunk k (images [k CHUNK, (k + 1) CHUNK)) corrupted alone with chunk k's seed."""
    return torch.cat([corrupt(images[c:c + CHUNK], NAME, SEVERITY, chunk_seed(SEED, NAME, SEVERITY, c // CHUNK),
                              protocol="scaled")
                      for c in range(0, N, CHUNK)])


def check(images, reference, batch_size):
    starts, batches = zip(*generated_batches(images, NAME, SEVERITY, SEED, batch_size, protocol="scaled"))
    assert all(s % CHUNK == 0 for s in starts), starts
    assert all(b.shape[0] % CHUNK == 0 for b in batches[:-1]), [b.shape[0] for b in batches]
    assert list(starts) == [0] + list(torch.tensor([b.shape[0] for b in batches[:-1]]).cumsum(0).tolist())
    assert torch.equal(torch.cat(batches), reference)


@pytest.mark.parametrize("batch_size", [1, CHUNK - 1, CHUNK + 200, 2 * CHUNK + 1, 5 * CHUNK])
def test_batches_are_whole_chunks_whatever_the_batch_size(images, reference, batch_size):
    check(images, reference, batch_size)


def test_a_call_size_raised_as_on_a_gpu_is_rounded_to_whole_chunks(images, reference, monkeypatch):
    # On a GPU registry.call_images raises the batch to fill one call; any size must still give whole chunks.
    monkeypatch.setattr(registry, "call_images", lambda images, at_least: max(at_least, CHUNK + 321))
    check(images, reference, 64)
