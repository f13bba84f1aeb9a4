"""robench.eval.perturbation: one -P cell from a model forward and streamed chunks of sequences.

The row equals the stability metrics of all logits at once, whatever the chunking and the forward
pass size; shard states merge to the same row."""

import pytest
import torch

from robench.corruptions import perturbations as P
from robench.eval import stability
from robench.eval.perturbation import StabilityState, evaluate_perturbation

pytestmark = pytest.mark.usefixtures("one_thread")


def forward(images):
    """A fixed 'model': 10 logits from coarse image statistics (ties happen)."""
    x = images.float().flatten(1)
    return torch.stack([x[:, k::10].mean(1).floor() % 7 for k in range(10)], 1)


@pytest.mark.parametrize("name", ["translate", "gaussian_noise"])
def test_row_equals_the_metrics_of_all_logits(name):
    x = torch.randint(0, 256, (5, 3, 32, 32), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    row = evaluate_perturbation(forward, P.generated_sequences(x, name, seed=1, batch=2), name, frames_per_call=7)
    sequences = torch.cat([b for _, b in P.generated_sequences(x, name, seed=1, batch=5)])
    logits = forward(sequences.flatten(0, 1)).view(5, P.FRAMES[name], 10)
    noise = stability.is_noise(name)
    assert row["perturbation"] == name and row["n"] == 5 and row["frames"] == P.FRAMES[name]
    assert row["flip_prob"] == pytest.approx(stability.flip_prob(logits.argmax(-1), noise), abs=1e-12)
    ranks = stability.ranks(logits)
    assert row["top5_dist"] == pytest.approx(stability.ranking_dist(ranks, noise, "top5"), abs=1e-12)
    assert row["zipf_dist"] == pytest.approx(stability.ranking_dist(ranks, noise, "zipf"), abs=1e-12)
    # two shards merged give the same row
    a, b = StabilityState(name), StabilityState(name)
    a.update(logits[:2])
    b.update(logits[2:])
    a.merge(b)
    assert a.result() == pytest.approx(row)
