"""Noise and blur under the imagenet-c-299 protocol (make_imagenet_c_inception.py, 299 px): the official
generator's outputs on two 299-px photos (tests/corruptions/data/imagenet-c-299, made by
tools/golden_299_noise_blur.py; docs/faithfulness.md)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robench.corruptions import corrupt

DATA = Path(__file__).parent / "data" / "imagenet-c-299"
PROTOCOL = "imagenet-c-299"
# The random statistics run on the inputs repeated (each copy draws its own randomness); fewer copies
# for the slow glass_blur keep the file to seconds.
COPIES = {"glass_blur": 1}  # motion_blur keeps 4: one angle per image makes 2 copies swing ~0.4 dB


def load(name: str, key: str) -> torch.Tensor:
    with np.load(DATA / f"{name}.npz") as data:
        return torch.from_numpy(data[key]).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("name", ["defocus_blur", "zoom_blur", "gaussian_blur"])
def test_deterministic_blurs_are_bit_identical_to_the_official_generator(name):
    clean, expected = load("inputs", "inputs"), load(name, "outputs")
    n = clean.shape[0]
    for severity in range(1, 6):
        ours = corrupt(clean, name, severity, protocol=PROTOCOL, storage=False)
        diff = (ours.int() - expected[(severity - 1) * n : severity * n].int()).abs()
        assert diff.max() == 0, (name, severity, int((diff != 0).sum()), int(diff.max()))


STATS = json.loads((DATA / "stats_noise_blur.json").read_text())


@pytest.mark.parametrize("name", [k for k in STATS if not k.startswith("_")])
def test_random_corruptions_match_the_official_statistics(name):
    """Mean PSNR against the clean inputs and mean intensity per severity within the file's tolerances."""
    clean = load("inputs", "inputs").repeat(COPIES.get(name, 4), 1, 1, 1)
    for row in STATS[name]:
        out = corrupt(clean, name, row["severity"], seed=row["severity"], protocol=PROTOCOL, storage=False).double()
        mse = (out - clean.double()).pow(2).flatten(1).mean(1)
        psnr = (10 * torch.log10(255.0**2 / mse)).mean().item()
        assert abs(psnr - row["psnr"]) <= row["tol_psnr"], (name, row, psnr)
        assert abs(out.mean().item() - row["mean"]) <= row["tol_mean"], (name, row, out.mean().item())


def test_the_299_tables_are_the_inception_scripts():
    """The protocol reads its own rows (not imagenet-c's), and keeps imagenet-c's zoom factors, as the script does."""
    from robench.corruptions.blur import DEFOCUS, GLASS, zoom_factors

    assert DEFOCUS[PROTOCOL][4] == (12, 0.5) and GLASS[PROTOCOL][0] == (0.8, 1, 3)
    assert all(zoom_factors(s, PROTOCOL) == zoom_factors(s, "imagenet-c") for s in range(1, 6))
