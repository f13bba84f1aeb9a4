"""The hot loops are GPU-shaped: no host sync per training step or per eval batch (counted on the
CPU with tests/host_syncs.py, the augmentation's device paths forced), eval results independent
of the batch size and of how many images a corruption call gets, and metrics from float32 logits
even under autocast."""

import pytest
import torch
import yaml
from host_syncs import HostSyncs
from torch import nn

from robench.augment import common
from robench.config import EvalConfig, TrainConfig
from robench.corruptions import corrupt
from robench.corruptions.protocol import DETERMINISTIC
from robench.eval.loop import evaluate_run
from robench.eval.metrics import count_correct
from robench.models import build_model
from robench.runfolder.files import read_eval_csv
from robench.train.loop import Position, build, train_one_epoch

QUIET = lambda *_: None  # noqa: E731


def syncs_in_one_epoch(tmp_path, steps: int, **options) -> HostSyncs:
    cfg = TrainConfig(dataset="shapes10", model="small-cnn", epochs=1, batch_size=8, train_limit=8 * steps,
                      test_limit=32, out_dir=str(tmp_path), name=f"run{steps}", device="cpu", **options).validate()
    run = build(cfg)
    with HostSyncs() as syncs:
        train_one_epoch(run, Position.start(1, run.device))
    return syncs


@pytest.mark.parametrize("options", [dict(policy="standard"), dict(policy="augmix", jsd=True),
                                     dict(policy="autoaugment", mix="cutmix"),
                                     dict(policy="trivialaugment", mix="mixup", label_smoothing=0.1, optimizer="adabound")],
                         ids=["standard", "augmix-jsd", "autoaugment-cutmix", "trivialaugment-mixup-adabound"])
def test_the_training_loop_reads_nothing_back_per_step(tmp_path, monkeypatch, options):
    """An epoch of 5 steps makes as many host reads, and as many tensors from Python data, as one
    of 2 (the epoch's own: loss and error sums, the test count), on the GPU paths of every op."""
    monkeypatch.setattr(common, "_host", lambda t: False)
    two, five = syncs_in_one_epoch(tmp_path, 2, **options), syncs_in_one_epoch(tmp_path, 5, **options)
    assert five.count == two.count <= 3, (dict(two.sites), dict(five.sites))
    assert five.uploads <= two.uploads, (dict(two.sites), dict(five.sites))


def test_the_sync_counter_sees_a_read_per_step(tmp_path, monkeypatch):
    """The counter is not blind: an `.item()` per step (as the loop once had) is counted per step."""
    from robench.train import loop as train_module

    original = train_module.Step.__call__

    def reading(self, images, labels):
        loss, logits = original(self, images, labels)
        loss.item()
        return loss, logits

    monkeypatch.setattr(train_module.Step, "__call__", reading)
    monkeypatch.setattr(common, "_host", lambda t: False)
    two, five = syncs_in_one_epoch(tmp_path, 2), syncs_in_one_epoch(tmp_path, 5)
    assert five.count - two.count == 3


# ----------------------------------------------------------------------------- eval


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder by hand (a seeded, untrained small-cnn on shapes10), evaluated on 1000 images."""
    folder = tmp_path_factory.mktemp("gpu-shaped") / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump({"dataset": "shapes10", "model": "small-cnn", "seed": 0,
                                                        "test_limit": 1000}))
    torch.manual_seed(0)
    net = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    torch.save({"model": "small-cnn", "num_classes": 10, "classes": [str(k) for k in range(10)],
                "dataset": "shapes10", "epoch": 1, "state_dict": net.state_dict()}, folder / "checkpoint.pt")
    return folder


def eval_rows(run_dir, batch_size: int) -> tuple[list[dict], HostSyncs]:
    with HostSyncs() as syncs:
        out = evaluate_run(EvalConfig(str(run_dir), corruptions="gaussian_noise,contrast", severities="2",
                                  source="generated", batch_size=batch_size, seed=1, device="cpu", force=True), echo=QUIET)
    rows = [{k: r[k] for k in ("corruption", "severity", "n", "correct")} for r in read_eval_csv(out)]
    return rows, syncs


def test_eval_counts_do_not_change_with_the_batch_size_and_read_back_once_per_cell(run_dir):
    """Batches of 500 (two per cell) and 1000 (one): the same counts, and the same number of host
    reads (one per cell, none per batch)."""
    (small, small_syncs), (large, large_syncs) = eval_rows(run_dir, 500), eval_rows(run_dir, 1000)
    assert small == large and len(small) == 3
    assert 0 < int(small[1]["correct"]) < 1000
    assert small_syncs.count == large_syncs.count, (dict(small_syncs.sites), dict(large_syncs.sites))


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_corruptions_do_not_depend_on_the_images_per_call(name):
    """Each image's result is the same whether corrupt() gets it alone, in 7 or in all 24."""
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=g)
    whole = corrupt(images, name, 3)
    assert torch.equal(torch.cat([corrupt(images[s:s + 7], name, 3) for s in range(0, 24, 7)]), whole)
    assert torch.equal(corrupt(images[5:6], name, 3), whole[5:6])


# ----------------------------------------------------------------------------- fp32 logits


class NearTies(nn.Module):
    """Logits 1 + k * 2^-12 for the class k of each image (k from its first pixel) and 1 for the
    others except class 0 at 1 + 2^-13: float32 tells them apart, bfloat16 (8 bits) rounds all to 1."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(10, 10, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(10))

    def forward(self, images):
        k = images[:, 0, 0, 0].long() % 10
        logits = torch.ones(images.shape[0], 10)
        logits[:, 0] += 2.0 ** -13
        logits[torch.arange(images.shape[0]), k] += k.float() * 2.0 ** -12
        return self.head(logits)


def test_counts_come_from_float32_logits_even_under_autocast():
    images = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(40, dtype=torch.uint8)
    labels = torch.arange(40) % 10
    model = NearTies()
    fp32 = count_correct(model, images, labels, 16, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = count_correct(model, images, labels, 16, "cpu")
        bf16 = int((model(images).argmax(1) == labels).sum())  # what an autocast argmax would count
    assert fp32 == autocast == 40
    assert bf16 == 4  # the fixture can tell: in bfloat16 only class 0 is predicted



@pytest.mark.parametrize("name", ["spatter", "jpeg_compression"])
def test_spatter_and_jpeg_take_sync_free_paths_with_the_same_values(name, monkeypatch):
    """Off the CPU, spatter's hysteresis reads back convergence every 8 growth steps (growing past
    it changes nothing) and JPEG's range wrap is applied unconditionally (the identity inside the
    range): forced here on the CPU, the same values, with fewer reads."""
    from robench.corruptions import jpeg, spatter

    module = spatter if name == "spatter" else jpeg
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    expected, host_syncs = [], []
    for host in (True, False):
        monkeypatch.setattr(module, "_host", lambda t, host=host: host)
        with HostSyncs() as syncs:
            expected.append(torch.cat([corrupt(images, name, s, seed=s) for s in range(1, 6)]))
        host_syncs.append(syncs.count)
    assert torch.equal(expected[0], expected[1])
    assert host_syncs[1] < host_syncs[0], host_syncs
