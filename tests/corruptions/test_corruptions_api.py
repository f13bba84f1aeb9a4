"""The contract of `corrupt()` for all 19 corruptions (the per-corruption fidelity tests live in
the test files of each corruption module)."""

import pytest
import torch

from robench.corruptions import CORRUPTIONS, EXTRA, FUNCTIONS, STANDARD, corrupt, protocol, registry
from robench.errors import RobenchError

OFFICIAL_STANDARD = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
OFFICIAL_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
DETERMINISTIC = {
    "defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression", "gaussian_blur", "saturate",
}


def images(n: int = 4, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth colourful images with some saturated and dark areas, uint8 (N, 3, H, W)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 5, 5, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x = (x * 230 + 10).to(torch.uint8)
    x[:, :, : h // 5, : w // 5] = 250
    return x


def test_registry_lists_the_19_names_in_official_order():
    assert STANDARD == OFFICIAL_STANDARD
    assert EXTRA == OFFICIAL_EXTRA
    assert CORRUPTIONS == OFFICIAL_STANDARD + OFFICIAL_EXTRA
    assert len(set(CORRUPTIONS)) == 19


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_name_is_registered_with_its_randomness(name):
    assert name in FUNCTIONS and FUNCTIONS.get(name).description
    assert (name in protocol.DETERMINISTIC) == (name in DETERMINISTIC)


def test_the_registry_holds_exactly_the_protocol_names_in_order():
    registry.check_registry()
    assert list(FUNCTIONS) == list(CORRUPTIONS)


def test_unknown_name_is_a_user_error_listing_the_choices():
    with pytest.raises(RobenchError, match="gaussian_noise"):
        corrupt(images(1), "gaussian_noize", 1)


@pytest.mark.parametrize("severity", [0, 6, -1])
def test_severity_out_of_range_is_a_user_error(severity):
    with pytest.raises(RobenchError, match="severity"):
        corrupt(images(1), "brightness", severity)


def test_wrong_dtype_or_shape_is_a_user_error():
    with pytest.raises(RobenchError, match="corrupt"):
        corrupt(images(1).int(), "contrast", 1)
    with pytest.raises(RobenchError, match="corrupt"):
        corrupt(images(1)[:, :1], "contrast", 1)
    with pytest.raises(RobenchError, match="not both"):
        corrupt(images(1), "contrast", 1, seed=1, generator=torch.Generator())


@pytest.mark.parametrize("name", ["gaussian_noise", "contrast"])
def test_floats_and_single_images_follow_the_input_convention(name):
    x = images(3)
    expected = corrupt(x, name, 3, seed=5)
    as_float = corrupt(x.float() / 255, name, 3, seed=5)
    assert as_float.dtype == torch.float32 and torch.equal(as_float, expected.float() / 255)
    assert torch.equal(corrupt(x, name, 3, generator=torch.Generator().manual_seed(5)), expected)
    one = corrupt(x[0], name, 3, seed=5)
    assert one.shape == x.shape[1:] and one.dtype == torch.uint8
    if name == "contrast":  # deterministic: one image alone equals its row of the batch
        assert torch.equal(one, expected[0])


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_uint8_same_shape_and_device_and_deterministic_for_a_seed(name):
    x = images(4)
    for severity in (1, 5):
        out = corrupt(x, name, severity, seed=7)
        assert out.dtype == torch.uint8 and out.shape == x.shape and out.device == x.device
        assert torch.equal(out, corrupt(x, name, severity, seed=7)), (name, severity)
    assert torch.equal(x, images(4)), "the input must not be modified"


@pytest.mark.parametrize("name", [n for n in CORRUPTIONS if n not in DETERMINISTIC])
def test_random_corruptions_change_with_the_seed(name):
    x = images(4)
    assert not torch.equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1))


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_corruptions_ignore_the_seed(name):
    x = images(2)
    assert torch.equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_an_empty_batch_works(name):
    out = corrupt(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), name, 2)
    assert out.shape == (0, 3, 32, 32) and out.dtype == torch.uint8


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_48x40_image_works_and_is_changed(name):
    x = images(2, 48, 40)
    for severity in (1, 5):
        out = corrupt(x, name, severity, protocol="scaled")
        assert out.shape == x.shape and out.dtype == torch.uint8
    assert not torch.equal(out, x), name


def test_preview_grid_layout_rows_are_corruptions_columns_clean_then_severities():
    from robench.corruptions import preview

    x = images(2, 16, 12)
    grid = preview.preview_grid(x, ["contrast", "pixelate"], severities=[1, 5], seed=3, protocol="scaled")
    group_w = 2 * 12 + preview.GAP
    assert grid.dtype == torch.uint8
    assert grid.shape == (3, 2 * 16 + preview.GROUP_GAP, 3 * group_w + 2 * preview.GROUP_GAP)
    row1 = 16 + preview.GROUP_GAP
    second = 12 + preview.GAP
    assert torch.equal(grid[:, row1 : row1 + 16, second : second + 12], x[1])  # clean column, row 2
    left = 2 * (group_w + preview.GROUP_GAP)  # severity 5 group
    assert torch.equal(grid[:, row1 : row1 + 16, left : left + 12], corrupt(x, "pixelate", 5, seed=3, protocol="scaled")[0])
    assert (grid[:, :, 12] == preview.BACKGROUND).all()  # the 1-px gap between images


def test_preview_rejects_bad_input():
    from robench.corruptions import preview

    with pytest.raises(RobenchError):
        preview.preview_grid(images(1).float(), ["contrast"])
    with pytest.raises(RobenchError):
        preview.preview_grid(images(1), ["no_such_corruption"])


def test_save_png_round_trips_and_leaves_no_temporary_file(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    from robench.corruptions import preview

    grid = preview.preview_grid(images(2), ["brightness"], severities=[2])
    path = preview.save_png(grid, tmp_path / "sub" / "preview.png")
    assert np.array_equal(np.asarray(Image.open(path)), grid.permute(1, 2, 0).numpy())
    assert sorted(p.name for p in path.parent.iterdir()) == ["preview.png"]
    with pytest.raises(RobenchError, match="cannot write"):
        preview.save_png(grid, path / "inside_a_file.png")


def test_every_official_protocol_has_every_corruption():
    """Each protocol's table covers all 19 corruptions at its own size (a protocol added to
    PROTOCOLS without a row in some corruption's table fails here, not in a user's evaluation)."""
    from robench.corruptions.protocol import PROTOCOLS

    for protocol in PROTOCOLS.values():
        if protocol.size is None:
            continue
        image = torch.randint(0, 256, (1, 3, protocol.size, protocol.size), dtype=torch.uint8,
                              generator=torch.Generator().manual_seed(0))
        for name in CORRUPTIONS:
            out = corrupt(image, name, 5, seed=0, protocol=protocol.name, storage=False)
            assert out.shape == image.shape and not torch.equal(out, image), (protocol.name, name)
