"""The 299-px ImageNet-C protocol (imagenet-c-299, make_imagenet_c_inception.py) of brightness,
contrast, saturate, pixelate, jpeg_compression and elastic_transform, against the official
functions' outputs in tests/corruptions/data/imagenet-c-299 (tools/golden_299_digital.py)."""

import json

import numpy as np
import pytest
import torch

from locations import ROOT
from robench.corruptions import corrupt, digital, elastic
from robench.corruptions.protocol import PROTOCOLS, default_protocol

DATA = ROOT / "tests" / "corruptions" / "data" / "imagenet-c-299"
DETERMINISTIC = ["brightness", "contrast", "saturate", "pixelate", "jpeg_compression"]


def load(name: str, key: str = "outputs") -> np.ndarray:
    with np.load(DATA / f"{name}.npz") as archive:
        return archive[key]


def nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


def nhwc(images: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_matches_the_official_299_output(name, shared_dir):
    # Every value identical at every severity, also under CUDA's scalar division (shared_dir's
    # "cuda-division" parameter; the data itself is in the repository).
    inputs = load("inputs", "inputs")
    expected = load(name).reshape(5, *inputs.shape)
    for severity in range(1, 6):
        out = nhwc(corrupt(nchw(inputs), name, severity, protocol="imagenet-c-299", storage=False))
        assert np.array_equal(out, expected[severity - 1]), (name, severity, (out == expected[severity - 1]).mean())


def test_stored_brightness_is_the_scripts_q85_file():
    # corrupt's storage step (on by default) after brightness = the script's PIL quality-85 save.
    inputs = load("inputs", "inputs")
    expected = load("brightness_q85").reshape(5, *inputs.shape)
    for severity in (1, 5):
        out = nhwc(corrupt(nchw(inputs), "brightness", severity, protocol="imagenet-c-299"))
        assert np.array_equal(out, expected[severity - 1]), severity


def test_the_protocol_and_its_size_bound_parameters():
    assert PROTOCOLS["imagenet-c-299"].size == 299 and PROTOCOLS["imagenet-c-299"].storage == "jpeg85"
    assert default_protocol(299, 299) == "imagenet-c-299"
    # pixelate: int(299 * c) of the script's list (0.3 * 299 = 89.69...).
    assert [digital.pixelate_size(299, s, "imagenet-c-299") for s in range(1, 6)] == [149, 119, 89, 74, 59]
    assert digital.JPEG_QUALITY_TABLE["imagenet-c-299"] == (23, 16, 13, 8, 5)
    # elastic_transform: ImageNet-C's factors times the script's hard-coded 360.
    assert elastic.parameters(1, 299, 299, "imagenet-c-299") == (360 * 2, 360 * 0.7, 360 * 0.1)
    assert elastic.parameters(5, 299, 299, "imagenet-c-299") == (360 * 0.12, 360 * 0.01, 360 * 0.02)


def test_elastic_matches_the_official_statistics():
    """Per severity, mean PSNR against the clean inputs and mean intensity within
    stats_digital.json's tolerance (the 2 inputs repeated 4 times, each copy with its own draws)."""
    stats = json.loads((DATA / "stats_digital.json").read_text())["elastic_transform"]
    clean = nchw(load("inputs", "inputs")).repeat(4, 1, 1, 1)
    for row in stats:
        out = corrupt(clean, "elastic_transform", row["severity"], seed=row["severity"], protocol="imagenet-c-299",
                      storage=False)
        mse = (out.double() - clean.double()).pow(2).flatten(1).mean(1)
        psnr = (10 * torch.log10(255.0**2 / mse)).mean().item()
        mean = out.double().mean().item()
        assert abs(psnr - row["psnr"]) <= row["tol_psnr"], (row, psnr)
        assert abs(mean - row["mean"]) <= row["tol_mean"], (row, mean)


def test_elastic_given_the_official_draws_is_the_official_output():
    # The script's draws at np.random.seed(0) (affine jitter (3, 2), then dx's and dy's U(-1, 1)
    # fields) replayed through robench's deterministic part: base 360, sigma up to 252 px on 299;
    # identical at every severity (OpenCV 4.10, SciPy 1.13, scikit-image 0.20).
    inputs = load("inputs", "inputs")
    expected = load("elastic_transform").reshape(5, *inputs.shape)
    for severity in range(1, 6):
        _, _, jitter = elastic.parameters(severity, 299, 299, "imagenet-c-299")
        rng = np.random.RandomState(0)
        offsets = torch.from_numpy(rng.uniform(-jitter, jitter, (1, 3, 2)).astype(np.float32))
        noise_x, noise_y = (torch.from_numpy(rng.uniform(-1, 1, (1, 299, 299))) for _ in range(2))
        n = len(inputs)
        out = nhwc(elastic.apply(nchw(inputs), severity, offsets.expand(n, 3, 2), noise_x.expand(n, 299, 299),
                                 noise_y.expand(n, 299, 299), protocol="imagenet-c-299"))
        assert np.array_equal(out, expected[severity - 1]), (severity, (out == expected[severity - 1]).mean())
