"""Losses (soft CE, smoothing, JSD, distillation) and optimizers (AdaBound by hand, cosine schedule)."""

import math

import pytest
import torch
import torch.nn.functional as F

from robench.errors import RobenchError
from robench.train import losses
from robench.train.optim import AdaBound, cosine_schedule, make_optimizer


def test_soft_cross_entropy_equals_cross_entropy_on_one_hot_and_smoothing_matches_torch():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(16, 7, generator=g), torch.randint(0, 7, (16,), generator=g)
    one_hot = losses.one_hot(labels, 7)
    assert losses.soft_cross_entropy(logits, one_hot) == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    smoothed = losses.smooth(one_hot, 0.1)
    assert smoothed.sum(1).allclose(torch.ones(16)) and smoothed.max() == pytest.approx(0.9 + 0.1 / 7)
    assert losses.soft_cross_entropy(logits, smoothed) == pytest.approx(
        F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)


def test_jsd_equals_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(8, 5, generator=g) for _ in range(3)]
    p = [torch.softmax(x.double(), 1) for x in z]
    m = torch.clamp((p[0] + p[1] + p[2]) / 3, 1e-7, 1)
    direct = sum((pi * (pi.log() - m.log())).sum(1).mean() for pi in p) / 3
    assert losses.jsd_consistency(*z).item() == pytest.approx(direct.item(), rel=1e-5)
    assert losses.jsd_consistency(z[0], z[0], z[0]).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_by_hand():
    g = torch.Generator().manual_seed(2)
    s, t, y = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), torch.tensor([0, 1, 2, 1])
    T, alpha = 4.0, 0.9
    pt, ps = torch.softmax(t / T, 1), torch.softmax(s / T, 1)
    kl = (pt * (pt.log() - ps.log())).sum(1).mean()
    expected = alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)
    got = losses.distillation(s, t, losses.one_hot(y, 3), T, alpha)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_adabound_matches_a_hand_stepped_reference():
    torch.manual_seed(0)
    w0 = torch.randn(5, dtype=torch.float64)
    target = torch.randn(5, dtype=torch.float64)
    w = w0.clone().requires_grad_(True)
    opt = AdaBound([w], lr=1e-2, final_lr=0.1, gamma=1e-3, weight_decay=1e-3)
    # Hand-stepped reference of the published update.
    ref, m, v = w0.clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t in range(1, 31):
        opt.zero_grad()
        loss = ((w - target) ** 4).sum()
        loss.backward()
        opt.step()
        grad = 4 * (ref - target) ** 3 + 1e-3 * ref
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        step = 1e-2 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        lower, upper = 0.1 * (1 - 1 / (1e-3 * t + 1)), 0.1 * (1 + 1 / (1e-3 * t))
        ref = ref - (step / (v.sqrt() + 1e-8)).clamp(lower, upper) * m
    assert torch.allclose(w.detach(), ref, rtol=1e-10, atol=1e-12)


def test_adabound_final_lr_follows_the_schedule():
    w = torch.zeros(1, requires_grad=True)
    opt = AdaBound([w], lr=1e-3, final_lr=0.1)
    opt.param_groups[0]["lr"] = 5e-4  # a scheduler halved the lr
    w.grad = torch.ones(1)
    opt.step()
    # At t=1 the upper bound is final_lr * (1 + 1/gamma) = 0.05 * 1001; the Adam step (~lr) is inside it.
    assert w.item() == pytest.approx(-5e-4, rel=1e-3)


def test_sgd_is_nesterov_and_unknown_optimizer_errors():
    opt = make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], None, 5e-4)
    group = opt.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.9 and group["lr"] == 0.1 and group["weight_decay"] == 5e-4
    with pytest.raises(RobenchError, match="unknown optimizer 'lion'"):
        make_optimizer("lion", [torch.zeros(1, requires_grad=True)], None, 0)


def test_cosine_schedule_per_batch():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    schedule = cosine_schedule(opt, total_steps=10, min_lr=1e-6)
    lrs = []
    for _ in range(10):
        opt.step()
        schedule.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[4] == pytest.approx(1e-6 + (0.1 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[-1] == pytest.approx(1e-6)


# ----------------------------------------------------------------------------- the assembled objective


def _hand_loss(logits, labels, k, smoothing=0.0, jsd_lambda=None, teacher=None, T=4.0, alpha=0.9):
    """The training loss written out by hand in float64, term by term."""
    views = logits.double().chunk(3) if jsd_lambda is not None else (logits.double(),)
    z = views[0]
    target = F.one_hot(labels, k).double() * (1 - smoothing) + smoothing / k
    ce = -(target * z.log_softmax(1)).sum(1).mean()
    loss = ce
    if teacher is not None:
        pt, log_ps = (teacher.double() / T).softmax(1), (z / T).log_softmax(1)
        kl = (pt * (pt.log() - log_ps)).sum(1).mean()
        loss = (1 - alpha) * ce + alpha * T * T * kl
    if jsd_lambda is not None:
        p = [v.softmax(1) for v in views]
        m = ((p[0] + p[1] + p[2]) / 3).clamp(1e-7, 1)
        loss = loss + jsd_lambda * sum((pi * (pi.log() - m.log())).sum(1).mean() for pi in p) / 3
    return loss.item()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("jsd", [False, True])
@pytest.mark.parametrize("distil", [False, True])
def test_objective_equals_a_hand_computation_for_every_combination(smoothing, jsd, distil):
    g = torch.Generator().manual_seed(3)
    n, k = 6, 5
    logits = torch.randn((3 if jsd else 1) * n, k, generator=g) * 2
    labels = torch.randint(0, k, (n,), generator=g)
    teacher = torch.randn(n, k, generator=g) * 3 if distil else None
    objective = losses.Objective(label_smoothing=smoothing, jsd_lambda=7.0 if jsd else None,
                                 kd_temperature=3.0 if distil else None, kd_alpha=0.7 if distil else 0.0)
    got = objective(logits, losses.one_hot(labels, k), teacher).item()
    expected = _hand_loss(logits, labels, k, smoothing, 7.0 if jsd else None, teacher, T=3.0, alpha=0.7)
    assert got == pytest.approx(expected, rel=1e-5)


def test_objective_from_config_reads_every_term():
    from robench.config import TrainConfig

    cfg = TrainConfig(policy="augmix", jsd=True, jsd_lambda=5.0, label_smoothing=0.2, teacher="t",
                      kd_temperature=2.0, kd_alpha=0.25)
    assert losses.Objective.from_config(cfg) == losses.Objective(0.2, 5.0, 2.0, 0.25)
    assert losses.Objective.from_config(TrainConfig()) == losses.Objective(0.0, None, None, 0.0)
    with pytest.raises(ValueError, match="teacher"):
        losses.Objective.from_config(cfg)(torch.zeros(3, 2), torch.zeros(1, 2))  # distils but no teacher logits
