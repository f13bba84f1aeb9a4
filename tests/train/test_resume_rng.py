"""A resumed run draws the random numbers the uninterrupted run would have drawn: the checkpoint's
random state holds torch's global generator as well as the augmentation generator, and restoring
it puts both back."""

import io

import torch

from robench.train.resume import rng_state, set_rng_state


def draws(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What training draws next: from torch's global generator (dropout, randperm) and the augmentation one."""
    return torch.rand(5), torch.randperm(20), torch.rand(5, generator=generator)


def through_a_checkpoint(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save({"rng": [state]}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)["rng"][0]


def test_restoring_the_rng_state_repeats_the_global_and_augmentation_draws():
    with torch.random.fork_rng(devices=[]):  # leave the global generator as other tests expect it
        torch.manual_seed(1234)
        generator = torch.Generator().manual_seed(99)
        draws(generator)  # somewhere in the middle of the streams
        saved = through_a_checkpoint(rng_state(generator))
        expected = draws(generator)
        # The process dies; a new one seeds afresh (as train does before resuming) and restores.
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        set_rng_state(saved, generator)
        got = draws(generator)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


def test_the_saved_state_is_a_snapshot_not_a_live_view():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        generator = torch.Generator().manual_seed(6)
        state = rng_state(generator)
        first = draws(generator)
        draws(generator)
        set_rng_state(state, generator)
        again = draws(generator)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
