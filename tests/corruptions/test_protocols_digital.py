"""The Tiny-ImageNet-C (64 px) and ImageNet-C (224 px) protocols of brightness, contrast, saturate,
pixelate, jpeg_compression and elastic_transform, and the protocols' storage step (a quality-85
JPEG): golden files of the official generators, Pillow, and the "scaled" protocol unchanged."""

import io
import json

import numpy as np
import pytest
import torch

from robench.corruptions import corrupt, digital, elastic, jpeg
from robench.corruptions._ops import gaussian_filter_2d
from robench.corruptions.registry import store

DETERMINISTIC = ["brightness", "contrast", "saturate", "pixelate", "jpeg_compression"]
# golden folder -> the protocol its generator is
GOLDEN = {"tinyimagenet-c": "tiny-imagenet-c", "imagenet-c": "imagenet-c"}


def nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


def nhwc(images: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).cpu().numpy())


def golden(shared_dir, folder: str, name: str) -> np.ndarray:
    return np.load(shared_dir / "golden" / folder / f"{name}.npy")


def pillow_q85(images: np.ndarray, **options) -> np.ndarray:
    """What the generators store: PIL `save(quality=85, ...)` of each (H, W, 3) image, read back."""
    from PIL import Image

    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=85, **options)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.stack(out)


def photo_like(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images with a flat grey patch and a noisy last image, uint8 (N, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, h // 6), max(2, w // 6), generator=g)
    img = (torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * 255)
    img = img.to(torch.uint8)
    img[:, :, : h // 4, : w // 4] = 128
    img[-1] = torch.randint(0, 256, img[-1].shape, generator=g, dtype=torch.uint8)
    return img


# ---------------------------------------------------------------- the deterministic five: bit-exact


@pytest.mark.parametrize("folder", GOLDEN)
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_matches_the_golden_generator_output(name, folder, shared_dir):
    # Every value identical at every severity, also under CUDA's scalar division (shared_dir).
    inputs = golden(shared_dir, folder, "inputs")
    expected = golden(shared_dir, folder, name).reshape(5, *inputs.shape)
    for severity in range(1, 6):
        out = nhwc(corrupt(nchw(inputs), name, severity, protocol=GOLDEN[folder], storage=False))
        assert np.array_equal(out, expected[severity - 1]), (name, folder, severity,
                                                               (out == expected[severity - 1]).mean())


def test_parameters_of_each_protocol_are_the_generators():
    # pixelate's intermediate sides: int(S * c) of each generator's list.
    assert [digital.pixelate_size(64, s, "tiny-imagenet-c") for s in range(1, 6)] == [57, 51, 44, 38, 32]
    assert [digital.pixelate_size(224, s, "imagenet-c") for s in range(1, 6)] == [134, 112, 89, 67, 56]
    # ImageNet-C's elastic_transform multiplies by 244 (the script's slip for 224, kept: the
    # released data has it); Tiny-ImageNet-C's by 64.
    assert elastic.parameters(1, 224, 224, "imagenet-c") == (244 * 2, 244 * 0.7, 244 * 0.1)
    assert elastic.parameters(5, 224, 224, "imagenet-c") == (244 * 0.12, 244 * 0.01, 244 * 0.02)
    assert elastic.parameters(2, 64, 64, "tiny-imagenet-c") == (64 * 0.05, 64 * 0.3, 64 * 0.06)
    assert [digital.JPEG_QUALITY_TABLE[p][4] for p in ("cifar10-c", "tiny-imagenet-c", "imagenet-c")] == [40, 25, 7]


# ---------------------------------------------------------------- "scaled": today's behaviour


@pytest.mark.parametrize("name", DETERMINISTIC + ["elastic_transform"])
def test_scaled_is_cifar10c_at_32_px(name):
    images = photo_like(3, 32, 32, seed=1)
    for severity in (1, 4):
        assert torch.equal(corrupt(images, name, severity, seed=3, protocol="scaled"),
                           corrupt(images, name, severity, seed=3, protocol="cifar10-c"))


def test_scaled_scales_cifar_parameters_by_the_image_side():
    factors = elastic.FACTORS_TABLE["cifar10-c"]
    assert elastic.parameters(3, 64, 80, "scaled") == tuple(64 * f for f in factors[2])
    assert elastic.parameters(3, 32, 32, "scaled") == elastic.parameters(3, 32, 32, "cifar10-c")
    cifar = digital.PIXELATE_TABLE["cifar10-c"]
    assert [digital.pixelate_size(64, s, "scaled") for s in range(1, 6)] == [int(64 * c) for c in cifar]
    images = photo_like(2, 64, 64, seed=2)
    for name in DETERMINISTIC:  # the two protocols' tables differ at 64 px
        assert not torch.equal(corrupt(images, name, 5, protocol="scaled"),
                               corrupt(images, name, 5, protocol="tiny-imagenet-c", storage=False)), name


# ---------------------------------------------------------------- elastic_transform: in distribution


@pytest.mark.parametrize("folder", GOLDEN)
def test_elastic_matches_golden_statistics(folder, shared_dir):
    """Per severity, the mean PSNR against the clean inputs and the mean intensity within
    random_stats.json's tolerance (inputs repeated 4 times, each copy with its own draws)."""
    stats = json.loads((shared_dir / "golden" / folder / "random_stats.json").read_text())["elastic_transform"]
    clean = nchw(golden(shared_dir, folder, "inputs")).repeat(4, 1, 1, 1)
    for row in stats:
        out = corrupt(clean, "elastic_transform", row["severity"], seed=row["severity"], protocol=GOLDEN[folder],
                      storage=False)
        mse = (out.double() - clean.double()).pow(2).flatten(1).mean(1)
        psnr = (10 * torch.log10(255.0**2 / mse)).mean().item()
        mean = out.double().mean().item()
        assert abs(psnr - row["psnr"]) <= row["tol_psnr"], (folder, row, psnr)
        assert abs(mean - row["mean"]) <= row["tol_mean"], (folder, row, mean)


def test_gaussian_reflect_wider_than_the_image_reflects_again():
    # ImageNet-C's elastic sigma 170.8 (truncate 3: radius 512) on 224 px: scipy's 'reflect'
    # extends the signal half-sample symmetrically without end (period 2n). Checked against that
    # definition on a short signal with a radius far beyond it.
    n, sigma = 5, 4.0
    x = torch.rand(1, 1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    radius = int(3 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * taps**2 / sigma**2)
    kernel /= kernel.sum()
    period = torch.cat([x[0, 0], x[0, 0].flip(0)])  # a b c d e e d c b a, repeated
    expected = [sum(kernel[t + radius] * period[(i + t) % (2 * n)] for t in range(-radius, radius + 1))
                for i in range(n)]
    out = gaussian_filter_2d(x, sigma, "reflect", truncate=3.0)[0, 0]
    assert torch.allclose(out, torch.stack(expected), rtol=0, atol=1e-14)


# ---------------------------------------------------------------- the storage step: PIL quality 85


@pytest.mark.parametrize("folder", GOLDEN)
def test_store_matches_the_golden_q85_arrays(folder, shared_dir):
    for name in ("inputs", "gaussian_noise", "brightness", "frost"):
        stored = nhwc(store(nchw(golden(shared_dir, folder, name)), "jpeg85"))
        assert np.array_equal(stored, golden(shared_dir, folder, f"{name}_q85")), (folder, name)


@pytest.mark.parametrize("size", [(64, 64), (224, 224), (17, 33), (31, 9), (65, 7), (1, 1)])
def test_store_matches_pillow_optimize_save(size):
    pytest.importorskip("PIL.Image")
    images = photo_like(3, *size, seed=size[0])
    np.testing.assert_array_equal(nhwc(store(images, "jpeg85")), pillow_q85(nhwc(images), optimize=True))


def test_optimize_changes_the_file_not_the_pixels():
    # optimize=True only computes optimal Huffman tables (lossless entropy coding): the file is
    # smaller, the decoded pixels are those of a plain quality-85 save.
    Image = pytest.importorskip("PIL.Image")
    images = nhwc(photo_like(4, 64, 48, seed=7))
    assert np.array_equal(pillow_q85(images, optimize=True), pillow_q85(images))
    sizes = []
    for optimize in (True, False):
        buf = io.BytesIO()
        Image.fromarray(images[0]).save(buf, "JPEG", quality=85, optimize=optimize)
        sizes.append(len(buf.getvalue()))
    assert sizes[0] < sizes[1]


def test_store_refuses_an_unknown_step():
    with pytest.raises(ValueError, match="storage step"):
        store(photo_like(1, 8, 8), "png")


@pytest.mark.parametrize("protocol,size", [("imagenet-c", 224), ("tiny-imagenet-c", 64)])
@pytest.mark.parametrize("name", ["brightness", "elastic_transform", "jpeg_compression"])
def test_corrupt_applies_the_storage_step_last(name, protocol, size):
    images = photo_like(2, size, size, seed=5)
    raw = corrupt(images, name, 3, seed=9, protocol=protocol, storage=False)
    assert torch.equal(corrupt(images, name, 3, seed=9, protocol=protocol), store(raw, "jpeg85"))
    assert torch.equal(corrupt(images, name, 3, seed=9, protocol="scaled"),
                       corrupt(images, name, 3, seed=9, protocol="scaled", storage=False))  # no storage step


@pytest.mark.parametrize("folder", GOLDEN)
def test_stored_brightness_is_the_released_one(folder, shared_dir):
    # brightness is deterministic, so the whole pipeline (corruption, then the JPEG the script
    # saved) must give the golden _q85 array value for value.
    inputs = golden(shared_dir, folder, "inputs")
    expected = golden(shared_dir, folder, "brightness_q85").reshape(5, *inputs.shape)
    for severity in range(1, 6):
        out = nhwc(corrupt(nchw(inputs), "brightness", severity, protocol=GOLDEN[folder]))
        assert np.array_equal(out, expected[severity - 1]), (folder, severity)


def test_contrast_sums_large_planes_in_numpys_order_off_the_cpu(monkeypatch):
    # Off the CPU, 224x224 planes (too many pixels for the one-kernel-per-pixel loop) are summed on
    # the host, in numpy's sequential order; a parallel or pairwise sum differs in the last bit.
    x = torch.randint(0, 256, (4, 3, 224 * 224), generator=torch.Generator().manual_seed(0)).double() / 255
    expected = torch.from_numpy(np.cumsum(x.numpy(), axis=2)[:, :, -1])
    monkeypatch.setattr(digital, "_sequential_cumsum", lambda device: False)
    assert torch.equal(digital.sequential_sum(x), expected)
    assert not torch.equal(x.sum(2), expected)


def test_jpeg_round_trip_in_cpu_pieces_equals_one_image_at_a_time(monkeypatch):
    images = photo_like(5, 24, 40, seed=11)
    monkeypatch.setattr(jpeg, "CPU_PIECE_PIXELS", 2 * 24 * 40)  # pieces of 2 images: 2, 2, 1
    out = jpeg.jpeg_round_trip(images, 85)
    for k in range(5):
        assert torch.equal(out[k:k + 1], jpeg._round_trip(images[k:k + 1], 85))
