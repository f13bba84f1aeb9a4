"""brightness, contrast, saturate, pixelate, jpeg_compression: golden files, Pillow, contract."""

import io

import numpy as np
import pytest
import torch

from robench.corruptions import digital, jpeg

NAMES = ["brightness", "contrast", "saturate", "pixelate", "jpeg_compression"]
FUNCTIONS = {
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "saturate": digital.saturate,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
}


def nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


def nhwc(images: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).cpu().numpy())


def run(name: str, images: torch.Tensor, severity: int) -> torch.Tensor:
    return FUNCTIONS[name](images, severity, torch.Generator(device=images.device))


@pytest.fixture
def golden_inputs(shared_dir):
    return np.load(shared_dir / "golden" / "cifar10c" / "inputs.npy")


@pytest.mark.parametrize("name", NAMES)
def test_matches_the_golden_generator_output(name, shared_dir, golden_inputs):
    # All five are exact restatements (float64 where the generator truncates float64; integer
    # arithmetic for Pillow and libjpeg-turbo), so every value must match, not just +-1 (also
    # under CUDA's scalar division: see the shared_dir fixture).
    golden = np.load(shared_dir / "golden" / "cifar10c" / f"{name}.npy").reshape(5, 128, 32, 32, 3)
    images = nchw(golden_inputs)
    for severity in range(1, 6):
        out = nhwc(run(name, images, severity)).astype(int)
        diff = np.abs(out - golden[severity - 1].astype(int))
        assert diff.max() == 0, (name, severity, diff.max(), (diff == 0).mean())


def _photo_like(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images with edges and flat grey areas (hue/saturation ties), uint8."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, max(2, h // 6), max(2, w // 6), generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    img = (img * 255).to(torch.uint8)
    img[:, :, : h // 4, : w // 4] = 128  # grey patch: r == g == b
    img[:, 1, h // 2 :, : w // 3] = img[:, 0, h // 2 :, : w // 3]  # r == g ties
    return img


@pytest.mark.parametrize("quality", [80, 40, 95, 10])
@pytest.mark.parametrize("size", [(48, 40), (17, 33), (8, 8), (31, 9)])
def test_jpeg_matches_pillow_at_any_size(quality, size):
    # Partial blocks and MCUs are padded the way libjpeg pads them, so odd sizes match too.
    Image = pytest.importorskip("PIL.Image")
    images = _photo_like(6, *size, seed=quality)
    images[-1] = torch.randint(0, 256, images[-1].shape, generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    expected = []
    for img in nhwc(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        expected.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    out = nhwc(jpeg.jpeg_round_trip(images, quality))
    np.testing.assert_array_equal(out, np.stack(expected))


def _pillow_box(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pillow's BOX resize; before Pillow 13 made the pass order depend on the shape (vertical
    first when the height shrinks by more than twice the width's pixels), compose the two
    single-axis passes in that order, so the test does not depend on the installed version."""
    import PIL
    from PIL import Image

    im = Image.fromarray(img)
    if int(PIL.__version__.split(".")[0]) >= 13:
        return np.asarray(im.resize((w, h), Image.BOX))
    H, W = img.shape[:2]
    first = (W, h) if H - h > 2 * (W - w) else (w, H)
    return np.asarray(im.resize(first, Image.BOX).resize((w, h), Image.BOX))


@pytest.mark.parametrize("size", [(48, 40), (17, 33), (9, 64), (101, 37), (46, 8)])
def test_pixelate_matches_pillow_box_resize_at_any_size(size):
    pytest.importorskip("PIL.Image")
    h, w = size
    images = _photo_like(4, h, w)
    for severity in (1, 3, 5):
        c = digital.PIXELATE[severity - 1]
        expected = [_pillow_box(_pillow_box(img, int(w * c), int(h * c)), w, h) for img in nhwc(images)]
        np.testing.assert_array_equal(nhwc(run("pixelate", images, severity)), np.stack(expected))


def test_hsv_round_trip_is_identity_up_to_truncation():
    images = _photo_like(8, 32, 32)
    x = images.double() / 255
    back = digital.hsv_to_rgb(*digital.rgb_to_hsv(x))
    assert torch.allclose(back, x, atol=1e-12)


def test_hsv_hue_on_ties_matches_skimage():
    # r == g == max: skimage assigns green's formula last, hue = (2 + (b - r)/delta) / 6 (which
    # equals red's formula exactly, so the tie order cannot change a value).
    x = torch.tensor([0.8, 0.8, 0.2], dtype=torch.float64).view(1, 3, 1, 1)
    h, s, v = digital.rgb_to_hsv(x)
    assert h.item() == pytest.approx(((2 + (0.2 - 0.8) / 0.6) / 6) % 1)
    # g == b == max: blue's formula wins, 4 + (r - g)/delta.
    x = torch.tensor([0.2, 0.8, 0.8], dtype=torch.float64).view(1, 3, 1, 1)
    assert digital.rgb_to_hsv(x)[0].item() == pytest.approx((4 + (0.2 - 0.8) / 0.6) / 6)


def test_saturate_tints_grey_red_at_high_severity():
    # The generator's quirk: S = 0 * c + 0.1 on grey pixels with hue 0 gives a red tint.
    grey = torch.full((1, 3, 8, 8), 128, dtype=torch.uint8)
    low, high = run("saturate", grey, 3), run("saturate", grey, 5)
    assert torch.equal(low, grey)
    r, g, b = high[0, :, 0, 0].tolist()
    assert r == 128 and g == b < 128


@pytest.mark.parametrize("name", NAMES)
def test_contract_dtype_shape_determinism_and_batch_independence(name):
    images = _photo_like(5, 32, 32, seed=3)
    out = run(name, images, 3)
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
    assert torch.equal(out, run(name, images, 3))
    # Deterministic corruptions depend on each image alone, whatever the batch around it.
    assert torch.equal(out[2:3], run(name, images[2:3], 3))
    assert not torch.equal(out, images)


@pytest.mark.parametrize("name", NAMES)
def test_chunked_large_batches_equal_single_images(name, monkeypatch):
    from robench.corruptions import corrupt, registry

    monkeypatch.setattr(registry, "CPU_PIECE_PIXELS", 3 * 32 * 32)  # corrupt() works in pieces of 3 images
    images = _photo_like(8, 32, 32, seed=4)
    out = corrupt(images, name, 2)
    for k in (0, 4, 7):
        assert torch.equal(out[k : k + 1], run(name, images[k : k + 1], 2))


@pytest.mark.parametrize("name", NAMES)
def test_other_sizes_run_and_change_the_image(name):
    images = _photo_like(3, 48, 40, seed=5)
    for severity in (1, 5):
        out = run(name, images, severity)
        assert out.shape == images.shape and out.dtype == torch.uint8
        assert not torch.equal(out, images)


@pytest.mark.parametrize("name", NAMES)
def test_severity_increases_the_damage(name, golden_inputs):
    images = nchw(golden_inputs[:32])
    errors = [(run(name, images, s).double() - images.double()).abs().mean().item() for s in range(1, 6)]
    if name == "saturate":  # 0.3x, 0.1x, then 1.5x, 2x, 2.5x saturation: two monotonic runs
        assert errors[0] < errors[1] and errors[2] < errors[3] < errors[4], errors
    else:
        assert errors == sorted(errors), errors


def test_pixelate_sizes_at_32_are_the_cifar_ones():
    assert [digital.pixelate_size(32, s) for s in range(1, 6)] == [30, 28, 27, 24, 20]


def test_jpeg_quant_tables_follow_ijg_scaling():
    assert jpeg.quant_table(jpeg.STD_LUMINANCE, 50) == list(jpeg.STD_LUMINANCE)
    assert jpeg.quant_table(jpeg.STD_LUMINANCE, 80)[:3] == [6, 4, 4]  # (16*40+50)//100 ...
    assert max(jpeg.quant_table(jpeg.STD_CHROMINANCE, 10)) == 255  # baseline clamp
