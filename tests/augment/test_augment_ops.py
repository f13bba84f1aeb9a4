"""Each batched op equals torchvision's functional op applied image by image with that image's
parameter: exactly for pixel ops, crops and flips; on >= 99% of pixels for resampling ops
(nearest: rounding at exact .5 positions may differ), bilinear also within 1 level."""

import math

import pytest
import torch

from robench.augment import common, dispatch, geometry, pixel

F = pytest.importorskip("torchvision.transforms.v2.functional")
BILINEAR = F.InterpolationMode.BILINEAR

N, H, W = 96, 40, 36  # odd, non-square size on purpose



pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors

@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Random images plus the awkward cases: gray (r = g = b), few levels, flat, dark."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N, 3, H, W), dtype=torch.uint8, generator=g)
    x[:16] = x[:16, :1].expand(-1, 3, -1, -1)
    x[16:32] = x[16:32] // 32 * 32 + 5
    x[32:36] = 77
    x[36:40] = x[36:40] // 8
    x[40:44, 1] = 200  # one flat channel
    return x


def per_image(fn, x, params):
    return torch.stack([fn(img, p) for img, p in zip(x, params)])


def signed_factors(n: int) -> torch.Tensor:
    """Enhancement factors as the policies produce them: 1 +- torchvision magnitudes (float32 table)."""
    m = torch.linspace(0.0, 0.99, 31).double()
    return torch.cat([1 + m, 1 - m]).repeat(n // 62 + 1)[:n]


EXACT = [
    ("brightness", lambda img, f: F.adjust_brightness(img, float(f)), signed_factors(N)),
    ("color", lambda img, f: F.adjust_saturation(img, float(f)), signed_factors(N)),
    ("contrast", lambda img, f: F.adjust_contrast(img, float(f)), signed_factors(N)),
    ("sharpness", lambda img, f: F.adjust_sharpness(img, float(f)), signed_factors(N)),
    ("posterize", lambda img, b: F.posterize(img, int(b)), torch.arange(N) % 9),
    ("solarize", lambda img, t: F.solarize(img, float(t)), 255.0 * torch.linspace(0, 1, N).double()),
]


@pytest.mark.parametrize("name,reference,params", EXACT, ids=[e[0] for e in EXACT])
def test_pixel_ops_equal_torchvision_exactly(images, name, reference, params):
    ours = getattr(pixel, name)(images, params)
    assert ours.dtype == torch.uint8 and ours.shape == images.shape
    assert torch.equal(ours, per_image(reference, images, params))


@pytest.mark.parametrize("name", ["autocontrast", "equalize", "invert"])
def test_parameterless_ops_equal_torchvision_exactly(images, name):
    reference = getattr(F, name)
    assert torch.equal(getattr(pixel, name)(images), torch.stack([reference(img) for img in images]))


def test_solarize_threshold_above_255_changes_nothing(images):
    assert torch.equal(pixel.solarize(images, 256.0), images)


def test_hflip_crop_cutout_equal_torchvision(images):
    g = torch.Generator().manual_seed(1)
    top, left = torch.randint(0, 9, (N,), generator=g), torch.randint(0, 9, (N,), generator=g)
    flip = torch.rand(N, generator=g) < 0.5
    expected = []
    for img, t, l, f in zip(images, top.tolist(), left.tolist(), flip.tolist()):
        out = F.crop(F.pad(img, [4]), t, l, H, W)
        expected.append(F.horizontal_flip(out) if f else out)
    assert torch.equal(geometry.crop_flip(images, top, left, flip), torch.stack(expected))
    assert torch.equal(geometry.crop(images, top, left), torch.stack([F.crop(F.pad(i, [4]), t, l, H, W) for i, t, l in zip(images, top.tolist(), left.tolist())]))
    assert torch.equal(geometry.hflip(images, flip), torch.stack([F.horizontal_flip(i) if f else i for i, f in zip(images, flip.tolist())]))

    cy, cx = torch.randint(0, H, (N,), generator=g), torch.randint(0, W, (N,), generator=g)
    expected = []
    for img, y, x in zip(images, cy.tolist(), cx.tolist()):
        y1, y2, x1, x2 = max(y - 8, 0), min(y + 8, H), max(x - 8, 0), min(x + 8, W)
        expected.append(F.erase(img, y1, x1, y2 - y1, x2 - x1, torch.tensor(0, dtype=torch.uint8)))
    assert torch.equal(pixel.cutout(images, cy, cx, 16), torch.stack(expected))


def _affine_reference(kind, interpolation):
    def shear(img, m, axis):
        deg = math.degrees(math.atan(float(m)))
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=[deg, 0.0] if axis == "x" else [0.0, deg],
                        center=[0, 0], interpolation=interpolation)

    return {
        "rotate": lambda img, a: F.rotate(img, float(a), interpolation=interpolation),
        "shear_x": lambda img, m: shear(img, m, "x"),
        "shear_y": lambda img, m: shear(img, m, "y"),
        "translate_x": lambda img, t: F.affine(img, angle=0.0, translate=[float(t), 0.0], scale=1.0, shear=[0.0, 0.0], interpolation=interpolation),
        "translate_y": lambda img, t: F.affine(img, angle=0.0, translate=[0.0, float(t)], scale=1.0, shear=[0.0, 0.0], interpolation=interpolation),
        "zoom": lambda img, s: F.affine(img, angle=0.0, translate=[0, 0], scale=float(s), shear=[0.0, 0.0], interpolation=interpolation),
    }[kind]


AFFINE_PARAMS = {
    "rotate": torch.linspace(-135, 135, N).double(),
    "shear_x": torch.linspace(-0.99, 0.99, N).double(),
    "shear_y": torch.linspace(-0.99, 0.99, N).double(),
    "translate_x": torch.linspace(-40, 40, N).double().trunc(),
    "translate_y": torch.linspace(-12.5, 12.5, N).double(),
    "zoom": torch.linspace(0.8, 1.2, N).double(),
}


@pytest.mark.parametrize("name", list(AFFINE_PARAMS))
def test_affine_ops_nearest_match_torchvision(images, name):
    params = AFFINE_PARAMS[name]
    ours = getattr(geometry, name)(images, params)
    expected = per_image(_affine_reference(name, F.InterpolationMode.NEAREST), images, params)
    assert (ours == expected).float().mean() >= 0.99


@pytest.mark.parametrize("name", ["rotate", "shear_x", "shear_y", "translate_x"])
def test_affine_ops_bilinear_match_torchvision(images, name):
    params = AFFINE_PARAMS[name]
    expected = per_image(_affine_reference(name, BILINEAR), images, params)
    # both the general 4-tap path and, through run_slots, the 2-tap path of axis-aligned ops
    general = getattr(geometry, name)(images, params, "bilinear")
    slotted = dispatch.run_slots(images, torch.zeros(N, dtype=torch.long), params, [name], "bilinear")
    for ours in (general, slotted):
        diff = (ours.int() - expected.int()).abs()
        assert diff.max() <= 1 and (diff == 0).float().mean() >= 0.99


def test_whole_pixel_translation_is_exact(images):
    t = torch.randint(-W, W, (N,)).double()
    expected = per_image(_affine_reference("translate_x", F.InterpolationMode.NEAREST), images, t)
    assert torch.equal(geometry.translate_x(images, t), expected)


def test_reflect_padding_is_symmetric():
    x = torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).expand(1, 3, 1, 4).contiguous()
    shifted = geometry.affine(x, geometry.translate_x_matrix(torch.tensor([3.0]), 1, 4), padding="reflect")
    assert shifted[0, 0, 0].tolist() == [2, 1, 0, 0]  # (c b a | a b c d)


def test_run_slots_gives_each_image_its_own_op(images):
    names = ["identity", "equalize", "posterize", "rotate", "solarize", "color", "translate_y"]
    g = torch.Generator().manual_seed(2)
    op = torch.randint(-1, len(names), (N, 2), generator=g)
    param = torch.stack([torch.rand(N, generator=g).double() * 30, torch.rand(N, generator=g).double() * 30], 1)
    param = torch.where((op == 2) | (op == 6), param.round() % 8, param)  # posterize bits, whole shifts
    param = torch.where(op == 5, param / 15, param)  # colour factors in 0..2
    ours = dispatch.run_slots(images, op, param, names)
    for i in range(N):
        img = images[i : i + 1]
        for s in range(2):
            if op[i, s] >= 0:
                spec = dispatch.OPS[names[op[i, s]]]
                p = param[i, s : s + 1]
                if spec.matrix is not None:
                    img = geometry.affine(img, spec.matrix(p, H, W))
                elif spec.apply is not None:
                    img = spec.apply(img, p)
        assert torch.equal(ours[i], img[0]), i


def test_run_slots_without_ops_returns_input(images):
    op = torch.full((N, 3), -1)
    assert torch.equal(dispatch.run_slots(images, op, torch.zeros(N, 3), ["rotate"]), images)


def test_row_copies_keep_every_byte():
    """take_rows/put_rows move images as wide elements (complex128 when the row allows): any
    byte pattern, including ones that read as signalling NaNs, must come through unchanged."""
    g = torch.Generator().manual_seed(3)
    for shape in [(12, 3, 32, 32), (12, 3, 40, 36), (12, 3, 5, 7)]:
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        nan = torch.tensor([1, 0, 0, 0, 0, 0, 0xF0, 0x7F] * 2 + [0xFF] * 16, dtype=torch.uint8)
        x.view(len(x), -1)[:, : len(nan)] = nan  # a signalling NaN, then quiet ones, at the row start
        index = torch.randperm(len(x), generator=g)[:7]
        taken = common.take_rows(x, index)
        assert torch.equal(taken, x[index])
        out = torch.zeros_like(x)
        common.put_rows(out, index, taken)
        assert torch.equal(out[index], x[index]) and int(out.sum()) == int(x[index].to(torch.int64).sum())


def test_run_slots_bilinear_equals_affine_image_by_image(images):
    """The grouped kernels (a grid per distinct angle, row runs and blends for one-axis maps)
    give exactly what `affine` gives one image at a time, whatever else is in the batch."""
    g = torch.Generator().manual_seed(4)
    names = ["rotate", "shear_x", "shear_y", "translate_x", "translate_y", "zoom"]
    op = torch.arange(N) % len(names)
    param = torch.stack([
        torch.randint(-9, 10, (N,), generator=g).double(),  # whole degrees, repeated: one grid each
        (torch.rand(N, generator=g).double() * 2 - 1) * 0.99,  # shears, up to ~40 px of y reach
        (torch.rand(N, generator=g).double() * 2 - 1) * 0.99,
        torch.randint(-12, 13, (N,), generator=g).double() + (torch.arange(N) % 2) * 0.5,  # whole and half
        torch.randint(-12, 13, (N,), generator=g).double() + (torch.arange(N) % 3 == 0) * 0.25,
        0.8 + 0.4 * torch.rand(N, generator=g).double(),
    ]).t().gather(1, op.view(N, 1)).view(N)
    ours = dispatch.run_slots(images, op, param, names, "bilinear")
    for i in range(N):
        matrix = dispatch.OPS[names[int(op[i])]].matrix(param[i : i + 1], H, W)
        assert torch.equal(ours[i], geometry.affine(images[i : i + 1], matrix, "bilinear")[0]), (i, names[int(op[i])])


def test_one_axis_maps_are_detected():
    m = torch.tensor([0.3, -0.05], dtype=torch.float64)
    assert geometry._one_axis(geometry.shear_x_matrix(m, H, W)) == "x" and geometry._one_axis(geometry.translate_y_matrix(m, H, W)) == "y"
    assert geometry._one_axis(geometry.rotate_matrix(torch.tensor([5.0, 0.0], dtype=torch.float64), H, W)) is None
    x = torch.randint(0, 256, (2, 3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    for axis, fn in (("x", geometry.shear_x_matrix), ("y", geometry.shear_y_matrix)):
        assert torch.equal(geometry.affine(x, fn(m, H, W), "bilinear"), geometry.affine(x, fn(m, H, W), "bilinear", axis=axis))


def test_bilinear_reflect_padding_is_symmetric():
    x = torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).expand(1, 3, 1, 4).contiguous() * 10
    shifted = geometry.affine(x, geometry.translate_x_matrix(torch.tensor([3.0]), 1, 4), "bilinear", "reflect")
    assert shifted[0, 0, 0].tolist() == [20, 10, 0, 0]  # (c b a | a b c d)


def test_results_are_never_scratch_buffers(images):
    """Ops reuse scratch buffers between calls; what they return must not be one of them."""
    x = images[:8]
    calls = [
        lambda p: geometry.rotate(x, p * 3.0, "bilinear"),
        lambda p: geometry.shear_x(x, p * 0.1, "bilinear"),
        lambda p: geometry.shear_y(x, p * 0.1, "bilinear"),
        lambda p: geometry.translate_x(x, p * 2.0),
        lambda p: geometry.translate_y(x, p * 2.0),
        lambda p: pixel.autocontrast(pixel.posterize(x, 8 - p)),
        lambda p: pixel.equalize(pixel.solarize(x, 200 - 40 * p)),
        lambda p: geometry.crop_flip(x, p + 1, 7 - p, p % 2 == 0),
        lambda p: dispatch.run_slots(x, torch.zeros(8, dtype=torch.long), torch.full((8,), p * 4.0), ["rotate"], "bilinear"),
    ]
    for call in calls:
        first = call(1)
        kept = first.clone()
        call(2)  # (the same buffers, other values)
        assert torch.equal(first, kept)


def test_sync_free_paths_equal_affine_image_by_image(images, monkeypatch):
    """On other devices run_slots resamples everything with grid_sample: still the same values
    as `affine` one image at a time, and the same equalize and crop_flip as on CPU."""
    expected_equalize, g = pixel.equalize(images), torch.Generator().manual_seed(6)
    top, left, flip = torch.randint(0, 9, (N,), generator=g), torch.randint(0, 9, (N,), generator=g), torch.rand(N, generator=g) < 0.5
    expected_crop = geometry.crop_flip(images, top, left, flip)
    monkeypatch.setattr(common, "_host", lambda t: False)
    assert torch.equal(pixel.equalize(images), expected_equalize)
    assert torch.equal(geometry.crop_flip(images, top, left, flip), expected_crop)
    names = ["rotate", "shear_x", "shear_y", "translate_x"]
    op = torch.arange(N) % len(names)
    param = torch.where(op == 0, (torch.arange(N) % 7 - 3).double() * 4, (torch.arange(N) % 5 - 2).double() * 0.07)
    param = torch.where(op == 3, (torch.arange(N) % 5 - 2).double() * 3, param)
    ours = dispatch.run_slots(images, op, param, names, "bilinear")
    for i in range(N):
        matrix = dispatch.OPS[names[int(op[i])]].matrix(param[i : i + 1], H, W)
        assert torch.equal(ours[i], geometry.affine(images[i : i + 1], matrix, "bilinear")[0]), i
