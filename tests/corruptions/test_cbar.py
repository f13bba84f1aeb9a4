"""CIFAR-10-C-bar: the contract of corrupt_bar (like corrupt's) and faithfulness to the official
transforms, measured on the golden outputs in data/cbar/ (tools/cbar_golden.py; data/cbar/README.md).

- Given the parameters the official code sampled, `apply_bar` must give its pixels exactly (all
  10 corruptions, 16 images x 5 severities each).
- robench's own sampling must give the official distribution: mean PSNR and intensity per
  severity within the generator's own seed-to-seed spread.
"""

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cuda_arith import CudaScalarDivision

from robench.corruptions import cbar, protocol
from robench.corruptions.cbar import apply_bar, corrupt_bar, corrupt_bar_chunks, generated_bar_batches
from robench.corruptions.benchmarks import parse_names
from robench.corruptions.cbar_protocol import CBAR_CORRUPTIONS, DETERMINISTIC, MAGNITUDES, chunk_seed
from robench.data.csets import write_generated
from robench.errors import RobenchError

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = Path(__file__).parent / "data" / "cbar"
RANDOM = [n for n in CBAR_CORRUPTIONS if n not in DETERMINISTIC]


@pytest.fixture(scope="module")
def golden():
    inputs = torch.from_numpy(np.load(DATA / "inputs.npy")).permute(0, 3, 1, 2).contiguous()
    outputs = torch.from_numpy(np.load(DATA / "outputs.npy")).permute(0, 1, 2, 5, 3, 4)
    with np.load(DATA / "params.npz") as params:
        params = {k: torch.from_numpy(v) for k, v in params.items()}
    return inputs, outputs, params, json.loads((DATA / "random_stats.json").read_text())


def official_params(params, name, severity):
    return {key.split("/")[1]: v[severity - 1] for key, v in params.items() if key.startswith(name + "/")}


@pytest.mark.parametrize("arithmetic", ["cpu-division", "cuda-division"])
@pytest.mark.parametrize("name", CBAR_CORRUPTIONS)
def test_official_pixels_given_official_parameters(golden, name, arithmetic):
    """Also with division by a Python number done as CUDA does it (tests/cuda_arith.py), so the
    promise holds on a GPU (up to its float64 sin/cos/exp, see docs/cbar.md)."""
    inputs, outputs, params, _ = golden
    index = CBAR_CORRUPTIONS.index(name)
    mode = CudaScalarDivision() if arithmetic == "cuda-division" else contextlib.nullcontext()
    for severity in range(1, 6):
        with mode:
            out = apply_bar(inputs, name, severity, official_params(params, name, severity))
        differ = int((out != outputs[index, severity - 1]).sum())
        assert differ == 0, f"{name} severity {severity}: {differ} values differ from the official ones"


def stats(out: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    """The golden statistics: PSNR (peak 255) of the mean squared error over all images, mean intensity."""
    mse = ((out.double() - clean.double()) ** 2).mean().clamp(min=1e-12)
    return (10 * torch.log10(255.0**2 / mse)).item(), out.double().mean().item()


@pytest.mark.parametrize("name", RANDOM)
def test_distribution_within_the_generators_spread(golden, name):
    """robench's sampling on the 16 inputs repeated 8 times against the official mean over 8 seeds
    of 16 images: within 4 standard errors of the difference (+ a small floor)."""
    inputs, _, _, report = golden
    clean = inputs.repeat(8, 1, 1, 1)
    for row in report[name]:
        psnr, mean = stats(corrupt_bar(clean, name, row["severity"], seed=row["severity"]), clean)
        spread = (1 / report["seeds"] + 1 / 8) ** 0.5
        assert abs(psnr - row["psnr_mean"]) <= 4 * row["psnr_sd"] * spread + 0.05, (name, row["severity"], psnr)
        assert abs(mean - row["mean_mean"]) <= 4 * row["mean_sd"] * spread + 0.25, (name, row["severity"], mean)


def test_deterministic_one_needs_no_seed(golden):
    inputs, outputs, _, _ = golden
    a = corrupt_bar(inputs, "circular_motion_blur", 3, seed=0)
    assert torch.equal(a, corrupt_bar(inputs, "circular_motion_blur", 3, seed=5))


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", CBAR_CORRUPTIONS)
def test_contract(images, name):
    out = corrupt_bar(images, name, 5, seed=3)
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
    assert torch.equal(out, corrupt_bar(images, name, 5, seed=3))
    assert not torch.equal(out, images)
    # chunks: one call over two chunks = each chunk alone with its seed (draws keyed per image)
    chunked = corrupt_bar_chunks(images, name, 5, [11, 12], chunk=3)
    alone = torch.cat([corrupt_bar(images[:3], name, 5, seed=11), corrupt_bar(images[3:], name, 5, seed=12)])
    assert torch.equal(chunked, alone)
    floats = corrupt_bar(images.float() / 255, name, 5, seed=3)
    assert floats.dtype == torch.float32 and torch.equal((floats * 255).round().to(torch.uint8), out)
    if name in RANDOM:
        assert not torch.equal(out, corrupt_bar(images, name, 5, seed=4))
        same = corrupt_bar(images[:1].repeat(4, 1, 1, 1), name, 5, seed=3)
        assert any(not torch.equal(same[0], same[k]) for k in range(1, 4)), "every image draws its own parameters"


def test_severities_grow_in_damage(golden):
    """Magnitudes rise with severity, so the mean damage does (a check on the table's wiring)."""
    inputs, _, _, report = golden
    for name in CBAR_CORRUPTIONS:
        psnr = [row["psnr_mean"] for row in report[name]]
        assert [row["magnitude"] for row in report[name]] == list(MAGNITUDES[name])
        assert psnr[0] > psnr[-1], name


def test_generated_batches_do_not_depend_on_batch_size(monkeypatch, images):
    monkeypatch.setattr(cbar, "CHUNK", 2)
    whole = torch.cat([b for _, b in generated_bar_batches(images, "ripple", 2, 9, batch_size=6)])
    pieces = torch.cat([b for _, b in generated_bar_batches(images, "ripple", 2, 9, batch_size=2)])
    assert torch.equal(whole, pieces)
    share = torch.cat([b for _, b in generated_bar_batches(images[2:], "ripple", 2, 9, batch_size=4, offset=2)])
    assert torch.equal(share, whole[2:])
    seeds = [chunk_seed(9, "ripple", 2, k) for k in range(3)]
    assert torch.equal(whole, corrupt_bar_chunks(images, "ripple", 2, seeds, chunk=2))


def test_chunk_seeds_are_their_own():
    assert chunk_seed(0, "lines", 1, 0) != protocol.chunk_seed(0, "lines", 1, 0)
    assert len({chunk_seed(0, n, s, k) for n in CBAR_CORRUPTIONS for s in range(1, 6) for k in range(20)}) == 1000


def test_bad_inputs(images):
    with pytest.raises(RobenchError, match="32 x 32"):
        corrupt_bar(torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "lines", 1)
    with pytest.raises(RobenchError, match="severity"):
        corrupt_bar(images, "lines", 6)
    with pytest.raises(RobenchError, match="sparkles"):
        corrupt_bar(images, "sparkle", 1)


def test_parse_bar_corruptions():
    assert parse_names("c-bar", "all") == list(CBAR_CORRUPTIONS)
    assert parse_names("c-bar", "sparkles, lines") == ["lines", "sparkles"]  # the table's order
    with pytest.raises(RobenchError, match="unknown name 'fog' in --corruptions for --benchmark c-bar"):
        parse_names("c-bar", "fog")


def test_registry_matches_the_table():
    cbar.check_registry()


def test_write_generated_bar_layout_and_resume(tmp_path, monkeypatch, images):
    monkeypatch.setattr(cbar, "CHUNK", 2)
    labels = torch.arange(6)
    out = write_generated(images, labels, tmp_path, ["lines", "ripple"], seed=4, benchmark="c-bar")
    array = np.load(out / "lines.npy")
    assert array.shape == (30, 32, 32, 3) and array.dtype == np.uint8
    assert np.load(out / "labels.npy").tolist() == list(range(6)) * 5
    expected = torch.cat([b for _, b in generated_bar_batches(images, "lines", 3, 4, batch_size=2)])
    assert np.array_equal(array[12:18], expected.permute(0, 2, 3, 1).numpy())
    cells = []
    (out / "ripple.npy").write_bytes(b"truncated")
    write_generated(images, labels, tmp_path, ["lines", "ripple"], seed=4, on_cell=lambda n, s: cells.append(n),
                    benchmark="c-bar")
    assert set(cells) == {"ripple"}, "a complete file is kept, a broken one is redone"
    assert np.load(out / "ripple.npy").shape == (30, 32, 32, 3)
