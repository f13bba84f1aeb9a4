"""The generated-eval protocol: chunk seeds (pinned), per-cell counts over every batch, count_correct's
batching, and which rows the eval CSV keeps when evaluations are merged into it.

Counts are checked against a direct count: corrupt each CHUNK-image chunk with its own chunk seed, run
the model, compare predictions with labels. The model is a randomly initialised small-cnn (seeded), the
data a tiny real-format CIFAR-10 test split of N images (several batches, the last one partial).
"""

import hashlib
import tarfile

import formats
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

# The API under test, imported in one place (modules may move: update only these lines).
from robench.cli import app
from robench.config import EvalConfig
from robench.corruptions import corrupt
from robench.corruptions.protocol import chunk_seed
from robench.corruptions.registry import generated_batches
from robench.data import load_split
from robench.eval.loop import evaluate_run
from robench.eval.metrics import count_correct
from robench.models import build_model
from robench.runfolder.files import read_eval_csv

CHUNK = 500  # the protocol's chunk size: part of the pinned golden values below
N = 1200  # two full chunks and a partial one
QUIET = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(data dir holding an extracted tiny CIFAR-10, test images uint8 NCHW, test labels)."""
    root = tmp_path_factory.mktemp("cifar-data")
    tarball = formats.cifar_tarball(tmp_path_factory.mktemp("tarball"), n_train=10, n_test=N, seed=5)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="data")
    images, labels = formats.cifar_test_split(tarball)
    return root, torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long()


@pytest.fixture(scope="module")
def model(data):
    _, images, _ = data
    pixels = images.float() / 255
    torch.manual_seed(0)
    net = build_model("small-cnn", 10, pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).tolist())
    return net.eval()


@pytest.fixture(scope="module")
def noisy(data):
    """The generated cell used below (gaussian_noise s3, seed 3), corrupted chunk by chunk by hand."""
    return direct_chunks(data[1], "gaussian_noise", 3, 3)


def make_run(folder, net, test_limit=None):
    """A run folder by hand: config.yaml + checkpoint.pt in the format robench train writes."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"dataset": "cifar10", "model": "small-cnn", "seed": 0, "test_limit": test_limit}))
    torch.save({"model": "small-cnn", "num_classes": 10, "classes": [f"class{k}" for k in range(10)],
                "dataset": "cifar10", "epoch": 1, "state_dict": net.state_dict()}, folder / "checkpoint.pt")
    return folder


@torch.no_grad()
def direct_count(net, images, labels) -> int:
    return int((net(images).argmax(1) == labels).sum())


def direct_chunks(images, corruption, severity, seed):
    return torch.cat([corrupt(images[c:c + CHUNK], corruption, severity, chunk_seed(seed, corruption, severity, c // CHUNK))
                      for c in range(0, images.shape[0], CHUNK)])


# --- chunk seeds and generated pixels, pinned -------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    ((0, "gaussian_noise", 3, 1), 6943906554263438651),
    ((0, "gaussian_noise", 3, 0), 3498134545446552552),
    ((0, "gaussian_noise", 4, 1), 3092961116984807765),
    ((1, "gaussian_noise", 3, 1), 8404633595001255986),
    ((0, "shot_noise", 3, 1), 6620983524554186047),
    ((7, "frost", 5, 19), 7214038196317566626),
])
def test_chunk_seed_golden_values(args, expected):
    assert chunk_seed(*args) == expected


def test_chunk_seed_depends_on_every_argument():
    base = (0, "gaussian_noise", 3, 1)
    variants = [(1, "gaussian_noise", 3, 1), (0, "shot_noise", 3, 1), (0, "gaussian_noise", 4, 1),
                (0, "gaussian_noise", 3, 0), (0, "gaussian_noise", 3, 2)]
    seeds = [chunk_seed(*base)] + [chunk_seed(*v) for v in variants]
    for v, s in zip(variants, seeds[1:]):
        assert s != seeds[0], f"chunk_seed{v} == chunk_seed{base}"
    assert len(set(seeds)) == len(seeds)
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds)  # a valid torch.Generator seed


def test_generated_pixels_golden_checksum():
    """gaussian_noise s3, seed 0, over the first 1000 shapes10 test images (two chunks), pinned."""
    images = load_split("shapes10", False, limit=1000).images
    flat_index_weight = torch.arange(images.numel()) % 251
    # The clean input first, so a change in shapes10 itself is told apart from one in the corruption.
    assert (int(images.long().sum()), int((images.long().flatten() * flat_index_weight).sum())) == (389905591, 48736286127)
    out = torch.cat([batch for _, batch in generated_batches(images, "gaussian_noise", 3, 0, 1000)])
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert int(out.long().sum()) == 388495184
    assert int((out.long().flatten() * flat_index_weight).sum()) == 48561062695
    assert hashlib.sha256(out.numpy().tobytes()).hexdigest() == \
        "c228e2ee808b8db8253d4fd3371f060c4b376741d78de54c3e281e10ae837cd6"


@pytest.mark.parametrize("batch_size", [1, 1000, 1700])
def test_generated_batches_are_fixed_seeded_chunks_whatever_the_batch_size(data, noisy, batch_size):
    _, images, _ = data
    starts, batches = zip(*generated_batches(images, "gaussian_noise", 3, 3, batch_size))
    step = max(CHUNK, batch_size // CHUNK * CHUNK)
    assert list(starts) == list(range(0, N, step))
    assert [b.shape[0] for b in batches] == [min(step, N - s) for s in starts]
    assert torch.equal(torch.cat(batches), noisy)


# --- evaluate_run(): every batch of every generated cell is counted --------------------------------------

def test_generated_eval_counts_every_batch_against_a_direct_count(data, model, noisy, tmp_path):
    root, images, labels = data
    run = make_run(tmp_path / "run", model, test_limit=N)
    out = evaluate_run(EvalConfig(str(run), corruptions="gaussian_noise", severities="3", source="generated",
                              batch_size=500, seed=3, device="cpu", data_dir=str(root)), echo=QUIET)
    rows = {(r["corruption"], int(r["severity"])): r for r in read_eval_csv(out)}
    assert set(rows) == {("clean", 0), ("gaussian_noise", 3)}
    per_chunk = [direct_count(model, noisy[c:c + CHUNK], labels[c:c + CHUNK]) for c in range(0, N, CHUNK)]
    assert sum(per_chunk) != per_chunk[-1]  # the test can tell "all batches" from "the last batch only"
    row = rows[("gaussian_noise", 3)]
    assert int(row["correct"]) == sum(per_chunk), per_chunk
    assert (int(row["n"]), int(row["seed"]), row["source"]) == (N, 3, "generated")
    assert float(row["error"]) == pytest.approx(100 * (1 - sum(per_chunk) / N), abs=1e-3)


def test_cli_eval_counts_the_partial_last_clean_batch(data, model, tmp_path):
    """--limit 300 --batch-size 128: batches of 128, 128 and 44; all of them are counted."""
    root, images, labels = data
    run = make_run(tmp_path / "run", model)
    result = CliRunner().invoke(app, ["eval", str(run), "--limit", "300", "--batch-size", "128", "--corruptions", "none",
                                      "--source", "generated", "--device", "cpu", "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    per_batch = [direct_count(model, images[s:min(s + 128, 300)], labels[s:min(s + 128, 300)]) for s in range(0, 300, 128)]
    assert sum(per_batch) != sum(per_batch[:-1])  # the partial last batch holds correct predictions
    (csv_path,) = (run / "eval").glob("*.csv")
    (row,) = read_eval_csv(csv_path)
    assert (row["corruption"], int(row["n"]), int(row["correct"])) == ("clean", 300, sum(per_batch))
    assert f"clean error {100 * (1 - sum(per_batch) / 300):.2f}%" in result.output


def test_eval_batch_size_defaults_to_a_cache_sized_batch_on_the_cpu(data, model, tmp_path, monkeypatch):
    """No --batch-size: 250 images per forward pass on the CPU (1000 on CUDA); a given one is kept."""
    import json

    from robench.config import eval_batch_size

    assert eval_batch_size(None, torch.device("cpu")) == 250
    assert eval_batch_size(None, torch.device("cuda")) == 1000
    assert eval_batch_size(64, torch.device("cpu")) == 64
    root, _, _ = data
    run = make_run(tmp_path / "run", model)
    seen = []
    forward = nn.Sequential.forward
    monkeypatch.setattr(nn.Sequential, "forward", lambda self, x: (seen.append(x.shape[0]), forward(self, x))[1])
    out = evaluate_run(EvalConfig(str(run), corruptions="contrast", severities="2", source="generated", device="cpu",
                              data_dir=str(root), limit=600), echo=QUIET)
    assert max(seen) == 250 and sum(seen) >= 1200
    (entry,) = json.loads(out.with_suffix(".json").read_text())["evaluations"]
    assert entry["batch_size"] == 250


# --- count_correct: every image counted, whatever the batch size -------------------------------------

class _PixelModel(nn.Module):
    """Predicts the class written in each image's first pixel: predictions are known exactly."""

    def forward(self, images):
        return nn.functional.one_hot(images[:, 0, 0, 0].long() % 10, 10).float()


@pytest.mark.parametrize("batch_size", [1, 5, 22, 23, 24, 1000])
def test_count_correct_counts_every_image_whatever_the_batch_size(batch_size):
    n = 23
    predictions = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6])
    images = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = predictions.to(torch.uint8)
    labels = predictions.clone()
    wrong = torch.arange(n) % 4 == 0  # images 0, 4, ..., 20 mislabelled; 21 and 22 (the tail) right
    labels[wrong] = (labels[wrong] + 1) % 10
    expected = n - int(wrong.sum())
    assert direct_count(_PixelModel(), images, labels) == expected == 17
    assert count_correct(_PixelModel(), images, labels, batch_size, "cpu") == expected


# --- the eval CSV: which earlier cells a new evaluation keeps ----------------------------------------

def test_eval_csv_keeps_same_seed_cells_and_drops_other_seeds(data, model, tmp_path):
    root, _, _ = data
    run = make_run(tmp_path / "run", model)

    def run_eval(corruptions, severities, seed):
        return evaluate_run(EvalConfig(str(run), corruptions=corruptions, severities=severities, source="generated",
                                   batch_size=500, seed=seed, device="cpu", data_dir=str(root), limit=50), echo=QUIET)

    def cells(path):
        return sorted((r["corruption"], int(r["severity"]), int(r["seed"])) for r in read_eval_csv(path))

    first = run_eval("contrast", "1", seed=0)
    contrast = [r for r in read_eval_csv(first) if r["corruption"] == "contrast"]
    # Same seed, other cells: both evaluations' cells are kept, the earlier ones unchanged.
    out = run_eval("impulse_noise", "2", seed=0)
    assert out == first
    assert cells(out) == [("clean", 0, 0), ("contrast", 1, 0), ("impulse_noise", 2, 0)]
    assert [r for r in read_eval_csv(out) if r["corruption"] == "contrast"] == contrast
    # Another seed: the earlier seed's cells go, only this evaluation's remain.
    run_eval("speckle_noise", "1", seed=1)
    assert cells(out) == [("clean", 0, 1), ("speckle_noise", 1, 1)]
    # The same cells again: replaced, not duplicated.
    run_eval("speckle_noise", "1", seed=1)
    assert cells(out) == [("clean", 0, 1), ("speckle_noise", 1, 1)]
    assert {r["seed"] for r in read_eval_csv(out)} == {"1"}
    assert all(int(r["n"]) == 50 for r in read_eval_csv(out))
