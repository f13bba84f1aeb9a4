"""CellMetrics' ECE bins: bin b holds confidences in [b/15, (b+1)/15), so a confidence exactly on
an inner edge joins the upper bin (docs/metrics.md)."""

import math

import pytest
import torch

from robench.eval.metrics import CellMetrics

pytestmark = pytest.mark.usefixtures("one_thread")


def confidence_of(logits: torch.Tensor) -> torch.Tensor:
    """The max softmax probability, computed as CellMetrics computes it."""
    return torch.log_softmax(logits.float(), dim=1).exp().max(dim=1).values


def logits_at(target: float) -> torch.Tensor:
    """Logits (1, K) = [d, 0, ..., 0] whose confidence (p of class 0) is exactly the float32
    `target`: d is searched among the float32 neighbours of log(target (K - 1) / (1 - target)), so
    the test does not depend on the last bit of the platform's exp and log. K is 2 for a target
    above 1/2, else enough classes for class 0 to be the most likely."""
    classes = 2 if target > 0.5 else math.floor(1 / target) + 2
    d = torch.tensor(math.log(target * (classes - 1) / (1 - target)), dtype=torch.float32)
    # (Found here within two float32 steps for every edge above 1/2; some lower edges, e.g. 1/15,
    # no logit of this form reaches.)
    up, down = d.clone(), d.clone()
    for _ in range(256):
        for candidate in (up, down):
            logits = torch.zeros(1, classes)
            logits[0, 0] = candidate
            if confidence_of(logits).item() == target:
                return logits
        up = torch.nextafter(up, torch.tensor(math.inf))
        down = torch.nextafter(down, torch.tensor(-math.inf))
    pytest.skip(f"no float32 logit gives a confidence of exactly {target} here")


def test_a_confidence_exactly_on_a_bin_edge_joins_the_upper_bin():
    metrics = CellMetrics("cpu")
    edge = metrics.edges[11].item()  # 12/15 = 0.8 as float32: the lower edge of bin 12
    on_edge = logits_at(edge)
    inside = torch.tensor([[math.log(0.81 / 0.19), 0.0]])  # confidence 0.81: inside bin 12
    assert confidence_of(on_edge).item() == edge
    # The edge image is right (label 0), the other wrong (label 1).
    metrics.update(torch.cat([on_edge, inside]), torch.tensor([0, 1]))
    state = metrics.state()
    counts = state["bin_count"].tolist()
    assert counts[12] == 2 and counts[11] == 0, counts
    # One bin holding both: |(0.8 + 0.81) - (1 + 0)| / 2; split over bins 11 and 12 it would be (0.2 + 0.81) / 2.
    conf = confidence_of(torch.cat([on_edge, inside])).double()
    assert metrics.result()["ece"] == pytest.approx(abs(conf.sum().item() - 1) / 2, abs=1e-9)


@pytest.mark.parametrize("bin_index", range(8, 15))  # the edges above 1/2, which two-class logits hit exactly
def test_every_inner_edge_above_one_half_is_the_first_confidence_of_its_bin(bin_index):
    metrics = CellMetrics("cpu")
    edge = metrics.edges[bin_index - 1].item()  # the lower edge of bin `bin_index`
    metrics.update(logits_at(edge), torch.tensor([0]))
    counts = metrics.state()["bin_count"].tolist()
    assert counts[bin_index] == 1, (bin_index, edge, counts)
