"""snow: golden statistics, the layer's structure, and the corruption contract."""

import json

import numpy as np
import pytest
import torch

from robench.corruptions import corrupt


def golden_inputs(shared_dir) -> torch.Tensor:
    inputs = np.load(shared_dir / "golden" / "cifar10c" / "inputs.npy")
    return torch.from_numpy(inputs).permute(0, 3, 1, 2).contiguous()


def test_snow_matches_the_golden_statistics(shared_dir):
    """Mean PSNR (per image, averaged) and mean intensity per severity within random_stats.json's
    tolerance, over the 128 inputs repeated 4 times (each copy draws its own snow)."""
    stats = json.loads((shared_dir / "golden" / "cifar10c" / "random_stats.json").read_text())["snow"]
    clean = golden_inputs(shared_dir).repeat(4, 1, 1, 1)
    for row in stats:
        out = corrupt(clean, "snow", row["severity"], seed=row["severity"])
        mse = (out.double() - clean.double()).pow(2).flatten(1).mean(1)
        psnr = (10 * torch.log10(255.0**2 / mse)).mean().item()
        assert abs(psnr - row["psnr"]) <= row["tol_psnr"], (row, psnr)
        assert abs(out.double().mean().item() - row["mean"]) <= row["tol_mean"], (row, out.double().mean())


def test_snow_brightens_by_the_grey_mix_and_only_adds_light():
    """x -> mix * x + (1 - mix) * max(x, 1.5 grey + 0.5), then the layer (>= 0) is added: on a
    uniform image of value v, every output is >= the mixed value and most pixels equal it."""
    v, mix = 60, 0.95  # severity 1
    images = torch.full((32, 3, 32, 32), v, dtype=torch.uint8)
    out = corrupt(images, "snow", 1, seed=0)
    x = np.float32(v / 255)
    base = np.floor((mix * x + (1 - mix) * max(x, x * 1.5 + 0.5)) * 255)  # grey of a grey pixel is itself
    assert out.min().item() == base
    assert (out == base).double().mean() > 0.5 and out.max() > base + 50  # flakes are bright


def test_snow_adds_the_same_layer_rotated_by_180_degrees():
    """On a uniform image the result is symmetric under a 180-degree rotation (up to the float
    rounding of the sum order), and the streaks run roughly vertically (angle in [-135, -45])."""
    images = torch.full((16, 3, 32, 32), 40, dtype=torch.uint8)
    out = corrupt(images, "snow", 3, seed=1).int()
    assert (out - out.flip(-2, -1)).abs().max() <= 1
    layer = out[:, 0].double() - out[:, 0].min()
    vertical = (layer[:, 1:] - layer[:, :-1]).abs().mean()
    horizontal = (layer[:, :, 1:] - layer[:, :, :-1]).abs().mean()
    assert vertical < 0.8 * horizontal


def test_snow_is_grey_over_colour():
    """One grey layer for all channels: where a flake saturates, all channels reach 255."""
    images = torch.zeros(16, 3, 32, 32, dtype=torch.uint8)
    images[:, 0] = 200
    out = corrupt(images, "snow", 5, seed=2)
    diff = out.int() - out[:, :, :1, :1].int()  # remove the (per-channel) background
    assert torch.equal(diff[:, 1], diff[:, 2])  # G and B only differ by the layer, the same for both
    assert (out == 255).all(1).any()


def test_contract():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    out = corrupt(images, "snow", 3, seed=7)
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
    assert torch.equal(out, corrupt(images, "snow", 3, seed=7))
    assert not torch.equal(out, corrupt(images, "snow", 3, seed=8))
    same = corrupt(images[:1].repeat(4, 1, 1, 1), "snow", 3, seed=0)
    assert not torch.equal(same[0], same[1]) and not torch.equal(same[2], same[3])
    for h, w in ((48, 40), (8, 9), (96, 64)):
        odd = torch.randint(0, 256, (3, 3, h, w), dtype=torch.uint8, generator=g)
        for severity in (1, 5):
            out = corrupt(odd, "snow", severity, seed=0, protocol="scaled")
            assert out.shape == odd.shape and (out.int() - odd.int()).abs().double().mean() > 5
