"""The training step and loop: the assembled loss is what the config asks for, the teacher is
really consulted, and an epoch never waits on the device per step."""

import pytest
import torch

from robench.config import TrainConfig
from robench.models import build_model
from robench.train import losses
from robench.train.loop import Position, Step, build, train_one_epoch


class Recorder(torch.nn.Module):
    """A teacher that counts its calls and returns fixed logits."""

    def __init__(self, logits):
        super().__init__()
        self.logits, self.calls = logits, 0

    def forward(self, x):
        self.calls += 1
        return self.logits[: x.shape[0]]


def images_and_labels(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10


@pytest.mark.parametrize("extra", [dict(policy="augmix", jsd=True), dict(policy="standard", mix="cutmix"),
                                   dict(policy="randaugment", label_smoothing=0.1)])
def test_the_step_distils_whenever_a_teacher_is_named(extra):
    """--jsd --teacher once recorded the teacher and never called it: the loss must change with
    the teacher's logits and the teacher must be called once per step."""
    torch.manual_seed(0)
    cfg = TrainConfig(model="small-cnn", teacher="t", kd_alpha=0.5, kd_temperature=2.0, **extra)
    model = build_model("small-cnn", 10)
    images, labels = images_and_labels()
    losses_seen = []
    for scale in (1.0, -1.0):
        teacher = Recorder(torch.randn(8, 10, generator=torch.Generator().manual_seed(1)) * 5 * scale)
        step = Step(cfg, model, 10, torch.device("cpu"), teacher)
        loss, logits = step(images, labels)
        assert teacher.calls == 1 and logits.shape == (8, 10) and torch.isfinite(loss)
        losses_seen.append(loss.item())
    assert losses_seen[0] != pytest.approx(losses_seen[1])


def test_the_jsd_step_loss_is_ce_plus_lambda_times_jsd_on_its_views():
    torch.manual_seed(0)
    cfg = TrainConfig(model="small-cnn", policy="augmix", jsd=True, jsd_lambda=12.0, label_smoothing=0.1)
    model = build_model("small-cnn", 10).eval()
    images, labels = images_and_labels()
    step = Step(cfg, model, 10, torch.device("cpu"))
    state = step.generator.get_state()
    loss, first = step(images, labels)
    step.generator.set_state(state)
    x, targets = step.inputs(images, labels)
    with torch.no_grad():
        z = model(x)
    clean, aug1, aug2 = z.chunk(3)
    expected = (losses.soft_cross_entropy(clean, losses.smooth(losses.one_hot(labels, 10), 0.1))
                + 12.0 * losses.jsd_consistency(clean, aug1, aug2))
    assert x.shape == (24, 3, 32, 32) and torch.allclose(first, clean, atol=1e-6)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_step_without_a_teacher_refuses_one_that_distils():
    with pytest.raises(ValueError, match="teacher"):
        Step(TrainConfig(model="small-cnn", teacher="t"), build_model("small-cnn", 10), 10, torch.device("cpu"))


def test_an_epoch_reads_the_device_once_not_per_step(tmp_path, monkeypatch):
    """Loss and error are summed on the device; the host reads them once per epoch (and once for
    the test count), however many steps the epoch has."""
    cfg = TrainConfig(dataset="shapes10", model="small-cnn", epochs=1, batch_size=32, train_limit=320,
                      test_limit=64, device="cpu", out_dir=str(tmp_path), name="r", policy="none")
    run = build(cfg)
    assert len(run.loader) == 10
    reads = {"item": 0, "int": 0, "tolist": 0}
    for name in reads:
        original = getattr(torch.Tensor, {"int": "__int__"}.get(name, name))

        def counting(self, *a, _original=original, _name=name, **k):
            reads[_name] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, {"int": "__int__"}.get(name, name), counting)
    seen = []  # each step's loss and number of wrong first-view predictions, kept on the device
    real_step = run.step

    def recording_step(images, labels):
        loss, logits = real_step(images, labels)
        seen.append((loss.detach(), (logits.argmax(1) != labels).sum(), labels.shape[0]))
        return loss, logits

    run.step = recording_step
    run.folder = tmp_path
    row = train_one_epoch(run, Position.start(1, run.device))
    # one read of (loss, wrong, images, non-finite flag), one of the test count
    assert reads["item"] == 0 and reads["int"] == 1 and reads["tolist"] == 1, reads
    n = sum(size for *_, size in seen)
    mean_loss = float(sum(loss * size for loss, _, size in seen) / n)
    error = 100 * float(sum(wrong for _, wrong, _ in seen)) / n
    assert len(seen) == 10 and float(row["train_loss"]) == pytest.approx(mean_loss, abs=1e-4)
    assert float(row["train_error"]) == pytest.approx(error, abs=0.01)


@pytest.mark.parametrize("extra", [dict(policy="randaugment"), dict(policy="standard", mix="mixup")])
def test_a_plain_step_smooths_labels_exactly_once(extra):
    torch.manual_seed(0)
    cfg = TrainConfig(model="small-cnn", label_smoothing=0.2, **extra)
    model = build_model("small-cnn", 10).eval()
    images, labels = images_and_labels()
    step = Step(cfg, model, 10, torch.device("cpu"))
    state = step.generator.get_state()
    loss, _ = step(images, labels)
    step.generator.set_state(state)
    x, targets = step.inputs(images, labels)
    if "mix" not in extra:
        assert torch.equal(targets, losses.one_hot(labels, 10))  # the inputs' targets are never smoothed
    assert torch.allclose(targets.sum(1), torch.ones(8))
    with torch.no_grad():
        z = model(x).double()
    by_hand = -((targets.double() * 0.8 + 0.02) * z.log_softmax(1)).sum(1).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
