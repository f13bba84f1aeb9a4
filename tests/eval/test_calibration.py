"""Per-cell calibration metrics (robench.eval.metrics.CellMetrics): hand-computed values on fixed logits,
ECE against torchmetrics, RMS calibration error against hand-computed adaptive bins (with the
reference code's left-out last bin), and a state that shards can combine."""

import math

import pytest
import torch
import torch.nn.functional as F

from robench.eval.metrics import CellMetrics, compute, rms_calibration_error

pytestmark = pytest.mark.usefixtures("one_thread")

# Softmax probabilities written down, logits = log p, so softmax(logits) == p exactly.
P = torch.tensor([
    [0.78, 0.12, 0.10],  # label 0: right, confidence 0.78 (bin 11 of 15)
    [0.50, 0.30, 0.20],  # label 1: wrong, confidence 0.50 (bin 7)
    [0.10, 0.15, 0.75],  # label 2: right, confidence 0.75 (bin 11)
    [0.15, 0.75, 0.10],  # label 0: wrong, confidence 0.75 (bin 11)
    [0.25, 0.60, 0.15],  # label 0: wrong, confidence 0.60 (bin 9)
], dtype=torch.float64)
LABELS = torch.tensor([0, 1, 2, 0, 0])


def hand_values():
    nll = -(math.log(0.78) + math.log(0.30) + math.log(0.75) + math.log(0.15) + math.log(0.25)) / 5
    brier = (0.22**2 + 0.12**2 + 0.10**2 + 0.50**2 + 0.70**2 + 0.20**2 + 0.10**2 + 0.15**2 + 0.25**2
             + 0.85**2 + 0.75**2 + 0.10**2 + 0.75**2 + 0.60**2 + 0.15**2) / 5
    # bin 11 holds 0.78 (right), 0.75 (right), 0.75 (wrong): |mean conf - accuracy| weighted 3/5
    ece = 3 / 5 * abs((0.78 + 0.75 + 0.75) / 3 - 2 / 3) + 1 / 5 * 0.50 + 1 / 5 * 0.60
    return nll, brier, ece


def test_nll_brier_ece_equal_hand_computed_values():
    metrics = CellMetrics("cpu")
    metrics.update(P.log().float(), LABELS)
    out = metrics.result()
    nll, brier, ece = hand_values()
    assert (out["n"], out["correct"]) == (5, 2)
    assert out["error"] == pytest.approx(0.6)
    assert out["nll"] == pytest.approx(nll, rel=1e-6)
    assert out["brier"] == pytest.approx(brier, rel=1e-6)
    assert out["ece"] == pytest.approx(ece, rel=1e-6)
    assert math.isnan(out["rms_ce"])  # under 2 bins of 100 images: undefined


def test_rms_calibration_error_equals_hand_computed_adaptive_bins():
    # 350 images: sorted by confidence, bins [0, 100), [100, 200), [200, 350) (the last takes the
    # remainder and, as in the reference code, is left out of the sum); weights |B| / n.
    conf = torch.cat([torch.full((100,), 0.6), torch.full((100,), 0.8), torch.full((150,), 0.95)])
    hit = torch.cat([torch.arange(100) % 2 == 0, torch.arange(100) % 10 != 0, torch.zeros(150, dtype=torch.bool)])
    order = torch.randperm(350, generator=torch.Generator().manual_seed(0))  # input order must not matter
    got = rms_calibration_error(conf[order], hit[order])
    expected = math.sqrt(100 / 350 * (0.6 - 0.5) ** 2 + 100 / 350 * (0.8 - 0.9) ** 2)
    assert float(got) == pytest.approx(expected, rel=1e-6)  # float32 confidences
    # Fewer than two full bins: no bin enters the reference's sum, so there is no value.
    assert math.isnan(float(rms_calibration_error(conf[:199], hit[:199].to(torch.uint8))))


def test_rms_calibration_error_sorts_by_confidence():
    """Bins are cut in confidence order: a well calibrated set scores 0 however it is shuffled."""
    conf = torch.cat([torch.full((100,), 0.5), torch.full((100,), 0.9), torch.full((100,), 0.99)])
    hit = torch.cat([torch.arange(100) < 50, torch.arange(100) < 90, torch.ones(100, dtype=torch.bool)])
    shuffled = torch.randperm(300, generator=torch.Generator().manual_seed(1))
    assert float(rms_calibration_error(conf[shuffled], hit[shuffled].to(torch.uint8))) == pytest.approx(0, abs=1e-6)


def random_logits(n=1000, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, classes, generator=g)
    labels = torch.where(torch.rand(n, generator=g) < 0.6, logits.argmax(1), torch.randint(0, classes, (n,), generator=g))
    return logits, labels


def test_ece_equals_torchmetrics_and_nll_brier_equal_direct_formulas():
    torchmetrics = pytest.importorskip("torchmetrics")
    logits, labels = random_logits()
    metrics = CellMetrics("cpu")
    for start in range(0, 1000, 300):  # batches, the last one partial
        metrics.update(logits[start:start + 300], labels[start:start + 300])
    out = metrics.result()
    reference = torchmetrics.functional.classification.multiclass_calibration_error(
        logits.softmax(1), labels, num_classes=10, n_bins=15, norm="l1")
    assert out["ece"] == pytest.approx(float(reference), abs=1e-6)
    p = logits.double().softmax(1)
    assert out["nll"] == pytest.approx(float(F.cross_entropy(logits.double(), labels)), rel=1e-6)
    assert out["brier"] == pytest.approx(float((p - F.one_hot(labels, 10)).square().sum(1).mean()), rel=1e-6)
    assert out["correct"] == int((logits.argmax(1) == labels).sum())


def test_sharded_states_combine_to_the_whole_cell():
    """Sums add (all-reduce), per-image tensors concatenate (all-gather): the result is the same."""
    logits, labels = random_logits(n=700, seed=3)
    whole = CellMetrics("cpu", keep_predictions=True)
    whole.update(logits, labels)
    shards = [CellMetrics("cpu", keep_predictions=True) for _ in range(2)]
    shards[0].update(logits[:300], labels[:300])
    shards[1].update(logits[300:], labels[300:])
    states = [s.state() for s in shards]
    combined = {k: torch.cat([s[k] for s in states]) if k in CellMetrics.PER_IMAGE else states[0][k] + states[1][k]
                for k in states[0]}
    a, b = compute(whole.state()), compute(combined)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    assert not math.isnan(a["rms_ce"])
    assert torch.equal(whole.state()["prediction"], logits.argmax(1))
