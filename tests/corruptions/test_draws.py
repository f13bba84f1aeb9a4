"""One corruption call over many chunks (draws.Streams, what a GPU gets) equals the chunks
corrupted one by one, bit for bit, for every corruption: the eval protocol's promise that an image's
corruption depends only on its chunk's seed, whatever the size of the call.
"""

import pytest
import torch

from robench.corruptions import draws
from robench.corruptions.protocol import CORRUPTIONS
from robench.corruptions.registry import corrupt_chunks, get_corruption

SIZES = [3, 1, 4]  # three chunks, unequal, so a wrong split shows
SEEDS = [11, 12, 13]


def images(n: int = sum(SIZES)) -> torch.Tensor:
    """Smooth random images with a flat patch (flat areas exercise the exact-rounding paths)."""
    g = torch.Generator().manual_seed(1)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    out = (torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear") * 255).to(torch.uint8)
    out[:, :, :6, :6] = 90
    return out


def generators():
    return [torch.Generator().manual_seed(s) for s in SEEDS]


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("severity", [2, 5])
def test_one_call_over_streams_equals_the_chunks_one_by_one(name, severity):
    function = get_corruption(name).factory
    options = {"textures": "procedural"} if name == "frost" else {}
    x = images()
    alone = torch.cat([function(part, severity, g, **options) for part, g in zip(x.split(SIZES), generators())])
    together = function(x, severity, draws.Streams(generators(), SIZES), **options)
    assert torch.equal(together, alone), (name, severity)


def test_streams_draw_each_chunk_from_its_own_generator_in_turn():
    source = draws.Streams(generators(), SIZES)
    first, second = draws.rand(source, (8, 2), device="cpu"), draws.randn(source, (8,), device="cpu")
    for k, (g, rows) in enumerate(zip(generators(), [slice(0, 3), slice(3, 4), slice(4, 8)])):
        assert torch.equal(first[rows], torch.rand((SIZES[k], 2), generator=g)), k
        assert torch.equal(second[rows], torch.randn((SIZES[k],), generator=g)), k
    ints = draws.randint(draws.Streams(generators(), SIZES), 7, (8, 3), device="cpu")
    assert torch.equal(ints[4:], torch.randint(0, 7, (4, 3), generator=generators()[2]))


def test_a_draw_must_have_one_row_per_image():
    with pytest.raises(ValueError, match="7 rows"):
        draws.rand(draws.Streams(generators(), SIZES), (7,), device="cpu")


def test_corrupt_chunks_equals_corrupt_per_chunk():
    from robench.corruptions import corrupt

    x = images(10)
    out = corrupt_chunks(x, "shot_noise", 4, [5, 6, 7], chunk=4)
    expected = torch.cat([corrupt(x[0:4], "shot_noise", 4, 5), corrupt(x[4:8], "shot_noise", 4, 6),
                          corrupt(x[8:], "shot_noise", 4, 7)])
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="3 chunks"):
        corrupt_chunks(x, "shot_noise", 4, [5, 6], chunk=4)
