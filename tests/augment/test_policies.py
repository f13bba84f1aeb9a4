"""Policies: the API contract, per-sample randomness with the defined frequencies, and outputs
rebuilt image by image from the recorded draws with torchvision's own op code (randaugment,
trivialaugment, autoaugment) or the official AugMix definitions (augmix)."""

import math

import pytest
import torch

from robench.augment import POLICIES, common, dispatch, geometry, make_policy, pixel
from robench.errors import RobenchError

v2 = pytest.importorskip("torchvision.transforms.v2")
F = v2.functional
NEAREST, BILINEAR = F.InterpolationMode.NEAREST, F.InterpolationMode.BILINEAR


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors


def batch(n=24, h=40, w=36, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g)
    x[: n // 4] = x[: n // 4, :1].expand(-1, 3, -1, -1)  # some gray images
    return x


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def within_sigmas(count: float, n: int, p: float, k: float = 5.0) -> bool:
    return abs(count - n * p) <= k * math.sqrt(n * p * (1 - p))


# ----------------------------------------------------------------------------- API contract


def test_registry_and_params():
    assert set(POLICIES) == {"none", "standard", "simple", "cutout", "randaugment", "autoaugment",
                             "trivialaugment", "augmix"}
    assert all(isinstance(e.description, str) and e.description for e in POLICIES.entries())
    assert POLICIES.params("randaugment") == {"num_ops": 2, "magnitude": 9, "num_magnitude_bins": 31,
                                            "base": "standard", "interpolation": "nearest"}
    assert POLICIES.params("augmix")["severity"] == 3 and POLICIES.params("augmix")["all_ops"] is False
    assert POLICIES.params("cutout")["size"] == 16
    assert POLICIES.get("augmix").params["depth"].help
    assert make_policy("augmix", width=2).config["width"] == 2
    assert make_policy("randaugment", num_ops="3").config["num_ops"] == 3  # strings from a command line


@pytest.mark.parametrize("name,params,needle", [
    ("randomaugment", {}, "unknown policy 'randomaugment'"),
    ("randaugment", {"magnitde": 3}, "no parameter 'magnitde'"),
    ("randaugment", {"num_ops": -1}, "num_ops"),
    ("randaugment", {"num_ops": 1.5}, "num_ops"),
    ("randaugment", {"magnitude": 31}, "num_magnitude_bins"),
    ("augmix", {"depth": 0}, "depth"),
    ("augmix", {"severity": 11}, "severity"),
    ("augmix", {"all_ops": "maybe"}, "all_ops"),
    ("cutout", {"base": "random"}, "base"),
    ("none", {"base": "none"}, "no parameter 'base'"),
])
def test_bad_names_and_params_raise_one_clear_error(name, params, needle):
    with pytest.raises(RobenchError, match=needle) as info:
        make_policy(name, **params)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_output_contract_and_reproducibility(name):
    x = batch()
    before = x.clone()
    policy = make_policy(name)
    out = policy(x, generator=gen(1))
    assert out.shape == x.shape and out.device == x.device and out.dtype == torch.uint8  # the input's dtype
    assert torch.equal(x, before)  # the input is never modified
    assert torch.equal(out, policy(x, generator=gen(1)))
    assert torch.equal(out, policy(x, seed=1))  # seed= is a generator seeded alike
    if name != "none":
        assert not torch.equal(out, policy(x, generator=gen(2)))
    exact = policy(x, generator=gen(1), dtype=torch.float32)
    assert exact.dtype == torch.float32 and 0 <= exact.min() and exact.max() <= 1
    assert torch.equal(exact.mul(255).round().to(torch.uint8), out)  # the uint8 result is the float one rounded
    floats = policy(x.float() / 255, generator=gen(1))
    assert floats.dtype == torch.float32 and torch.equal(floats, exact)  # float in: float out, same draws
    off_grid = policy((x.float() - 0.4) / 255, generator=gen(1))  # floats are rounded to 8 bits, not truncated
    assert torch.equal(off_grid, exact)
    single = policy(x[0], generator=gen(1))
    assert single.shape == x.shape[1:] and single.dtype == torch.uint8  # one (3, H, W) image


def test_policies_fit_in_a_per_image_torchvision_compose():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    pipeline = v2.Compose([v2.ToDtype(torch.float32, scale=True), make_policy("augmix")])
    out = pipeline(batch()[0])
    assert out.shape == (3, 40, 36) and out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_empty_batches_and_tiny_images(name):
    policy = make_policy(name)
    for shape in [(0, 3, 32, 32), (3, 3, 1, 1), (2, 3, 5, 7)]:
        out = policy(torch.zeros(shape, dtype=torch.uint8), generator=gen(0))
        assert out.shape == shape and out.dtype == torch.uint8


@pytest.mark.parametrize("images", [torch.zeros(2, 3, 8, 8, dtype=torch.int32), torch.zeros(2, 1, 8, 8),
                                    torch.zeros(8, 8, dtype=torch.uint8), [[0, 1]]])
def test_rejects_bad_images_with_one_error_type(images):
    with pytest.raises(RobenchError, match="policy 'standard' needs") as info:
        make_policy("standard")(images)
    assert "\n" not in str(info.value)


def test_generator_and_seed_together_is_an_error():
    with pytest.raises(RobenchError, match="not both"):
        make_policy("standard")(batch(), generator=gen(0), seed=0)


def test_standard_is_crop_of_padded_image_then_flip():
    x = batch()
    out, d = make_policy("standard")(x, generator=gen(3), return_params=True)
    for i in range(len(x)):
        ref = F.crop(F.pad(x[i], [4]), int(d["crop_top"][i]), int(d["crop_left"][i]), 40, 36)
        assert torch.equal(out[i], F.horizontal_flip(ref) if d["flip"][i] else ref)
    assert 0 < d["flip"].float().mean() < 1 and len(set(d["crop_top"].tolist())) > 3


def test_base_crop_flip_is_applied_first_unless_base_none():
    x = batch()
    out, d = make_policy("randaugment", num_ops=0)(x, generator=gen(4), return_params=True)
    assert torch.equal(out, geometry.crop_flip(x, d["crop_top"], d["crop_left"], d["flip"]))
    assert torch.equal(make_policy("randaugment", num_ops=0, base="none")(x, generator=gen(4)), x)
    out, d = make_policy("cutout", base="none", size=8)(x, generator=gen(5), return_params=True)
    assert torch.equal(out, pixel.cutout(x, d["cutout_y"], d["cutout_x"], 8))
    assert (out == 0).float().mean() > (x == 0).float().mean()


def test_simple_policy_draws_flip_rotation_and_zoom_per_image():
    x = batch(n=400, h=16, w=16)
    out, d = make_policy("simple")(x, generator=gen(6), return_params=True)
    assert d["angle"].abs().max() <= 7.2 and d["angle"].std() > 3
    assert 0.8 <= d["zoom_x"].min() and d["zoom_x"].max() <= 1.2 and not torch.equal(d["zoom_x"], d["zoom_y"])
    assert within_sigmas(d["flip"].sum(), 400, 0.5)
    # zero rotation, unit zoom and a flip give exactly the flipped image (reflect fill unused)
    m = geometry.rotate_matrix(torch.zeros(1, dtype=torch.float64), 16, 16)
    m[:, 0] *= -1
    assert torch.equal(geometry.affine(x[:1], m, "bilinear", "reflect"), x[:1].flip(-1))


# ----------------------------------------------------------------------------- torchvision-style policies


def torchvision_apply(transform, img, name, magnitude, interpolation=NEAREST):
    """torchvision's own mapping of (op name, magnitude) to a functional call."""
    return transform._apply_image_or_video_transform(img, name, magnitude, interpolation=interpolation,
                                                     fill=transform._fill)


def test_randaugment_draws_ops_uniformly_per_image():
    n = 4200
    _, d = make_policy("randaugment")(batch(n=n, h=8, w=8), generator=gen(7), return_params=True)
    ops_drawn = d["ops"]
    assert ops_drawn.shape == (n, 2) and len(d["op_names"]) == 14
    counts = torch.bincount(ops_drawn.flatten(), minlength=14)
    assert all(within_sigmas(c, 2 * n, 1 / 14) for c in counts.tolist())
    assert within_sigmas(d["negative"].sum(), 2 * n, 0.5)
    assert len({tuple(r) for r in ops_drawn.tolist()}) > 150  # images get different op pairs


def test_randaugment_equals_torchvision_ops_rebuilt_from_draws():
    x = batch(n=60)
    out, d = make_policy("randaugment", magnitude=13)(x, generator=gen(8), return_params=True)
    tv = v2.RandAugment()
    space = list(tv._AUGMENTATION_SPACE.items())
    assert [dispatch.OPS[n].name for n in d["op_names"]] == d["op_names"] and len(space) == len(d["op_names"])
    equal = 0
    for i in range(len(x)):
        img = d["base"][i]
        for slot in range(2):
            name, (magnitudes, signed) = space[int(d["ops"][i, slot])]
            m = magnitudes(31, 40, 36)
            magnitude = float(m[13]) if m is not None else 0.0
            if signed and d["negative"][i, slot]:
                magnitude = -magnitude
            img = torchvision_apply(tv, img, name, magnitude)
        equal += (img == out[i]).float().mean()
    assert equal / len(x) >= 0.99


def test_trivialaugment_one_op_and_uniform_bin_per_image_like_torchvision():
    n = 3000
    x = batch(n=n, h=8, w=8)
    out, d = make_policy("trivialaugment")(x, generator=gen(9), return_params=True)
    assert all(within_sigmas(c, n, 1 / 14) for c in torch.bincount(d["ops"].flatten(), minlength=14).tolist())
    assert all(within_sigmas(c, n, 1 / 31) for c in torch.bincount(d["bins"].flatten(), minlength=31).tolist())
    tv = v2.TrivialAugmentWide()
    space = list(tv._AUGMENTATION_SPACE.items())
    x, equal = batch(n=60), 0
    out, d = make_policy("trivialaugment")(x, generator=gen(10), return_params=True)
    for i in range(len(x)):
        name, (magnitudes, signed) = space[int(d["ops"][i])]
        m = magnitudes(31, 40, 36)
        magnitude = float(m[int(d["bins"][i])]) if m is not None else 0.0
        if signed and d["negative"][i]:
            magnitude = -magnitude
        equal += (torchvision_apply(tv, d["base"][i], name, magnitude) == out[i]).float().mean()
    assert equal / len(x) >= 0.99


def test_autoaugment_subpolicies_and_probabilities_like_torchvision():
    tv = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    table = tv._policies
    n = 5000
    _, d = make_policy("autoaugment")(batch(n=n, h=8, w=8), generator=gen(11), return_params=True)
    sub, applied = d["subpolicy"], d["applied"]
    assert all(within_sigmas(c, n, 1 / 25) for c in torch.bincount(sub, minlength=25).tolist())
    for k in range(25):
        for step in range(2):
            p = table[k][step][1]
            rows = applied[sub == k, step]
            assert within_sigmas(rows.sum(), len(rows), p) if 0 < p < 1 else bool((rows == (p > 0)).all())

    x, equal = batch(n=60), 0
    out, d = make_policy("autoaugment")(x, generator=gen(12), return_params=True)
    for i in range(len(x)):
        img = d["base"][i]
        for step, (name, _, level) in enumerate(table[int(d["subpolicy"][i])]):
            if not d["applied"][i, step]:
                continue
            magnitudes, signed = tv._AUGMENTATION_SPACE[name]
            m = magnitudes(10, 40, 36)
            magnitude = float(m[level]) if m is not None else 0.0
            if signed and d["negative"][i, step]:
                magnitude = -magnitude
            img = torchvision_apply(tv, img, name, magnitude)
        equal += (img == out[i]).float().mean()
    assert equal / len(x) >= 0.99


# ----------------------------------------------------------------------------- AugMix


def official_op(img, name, level, sign, h, w):
    """The official google-research/augmix op with level l (after sample_level), via torchvision."""
    deg = lambda m: math.degrees(math.atan(m))  # noqa: E731
    if name == "autocontrast":
        return F.autocontrast(img)
    if name == "equalize":
        return F.equalize(img)
    if name == "posterize":
        return F.posterize(img, 4 - int(level * 4 / 10))
    if name == "solarize":
        threshold = 256 - int(level * 256 / 10)
        return img if threshold > 255 else F.solarize(img, threshold)
    if name == "rotate":
        return F.rotate(img, sign * int(level * 30 / 10), interpolation=BILINEAR)
    if name in ("shear_x", "shear_y"):
        m = sign * level * 0.3 / 10
        shear = [deg(m), 0.0] if name == "shear_x" else [0.0, deg(m)]
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, center=[0, 0], interpolation=BILINEAR)
    if name in ("translate_x", "translate_y"):
        t = sign * int(level * ((w if name == "translate_x" else h) / 3) / 10)
        shift = [t, 0] if name == "translate_x" else [0, t]
        return F.affine(img, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0])
    factor = level * 1.8 / 10 + 0.1  # all_ops: color, contrast, brightness, sharpness
    return {"color": F.adjust_saturation, "contrast": F.adjust_contrast,
            "brightness": F.adjust_brightness, "sharpness": F.adjust_sharpness}[name](img, factor)


def rebuild_augmix(d, i, h, w, op_fn):
    """(1 - m) x + m sum_k w_k chain_k(x), in float64 on [0, 1], from image i's recorded draws."""
    x = d["base"][i]
    mix = torch.zeros(x.shape, dtype=torch.float64)
    for k in range(d["weights"].shape[1]):
        img = x
        for step in range(int(d["depth"][i, k])):
            name = d["op_names"][int(d["ops"][i, k, step])]
            img = op_fn(img, name, float(d["levels"][i, k, step]), float(d["signs"][i, k, step]), h, w)
        mix += float(d["weights"][i, k]) * img.double() / 255
    m = float(d["m"][i])
    return (1 - m) * x.double() / 255 + m * mix


def test_augmix_equals_official_definition_rebuilt_from_draws():
    x = batch(n=40)
    out, d = make_policy("augmix")(x, generator=gen(13), return_params=True, dtype=torch.float32)
    assert d["op_names"] == ["autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x",
                             "shear_y", "translate_x", "translate_y"]
    close = 0.0
    for i in range(len(x)):
        diff = (out[i].double() - rebuild_augmix(d, i, 40, 36, official_op)).abs()
        assert diff.max() <= 1 / 255 + 1e-6  # bilinear resampling may round a pixel differently
        close += (diff < 1e-6).float().mean()
    assert close / len(x) >= 0.99

    def our_op(img, name, level, sign, h, w):  # the same chain through our ops: exact mixing
        p = dispatch.OPS[name]
        param = torch.tensor([d_param(name, level, sign, h, w)], dtype=torch.float64)
        one = img.unsqueeze(0)
        res = geometry.affine(one, p.matrix(param, h, w), "nearest" if "translate" in name else "bilinear") \
            if p.matrix is not None else p.apply(one, param)
        return res[0]

    for i in range(len(x)):
        assert (out[i].double() - rebuild_augmix(d, i, 40, 36, our_op)).abs().max() < 1e-6


def d_param(name, level, sign, h, w):
    return {"autocontrast": 0, "equalize": 0, "posterize": 4 - int(level * 0.4), "solarize": 256 - int(level * 25.6),
            "rotate": sign * int(level * 3), "shear_x": sign * level * 0.03, "shear_y": sign * level * 0.03,
            "translate_x": sign * int(level * (w / 3) / 10), "translate_y": sign * int(level * (h / 3) / 10)}[name]


def test_augmix_draws_per_image_with_the_official_distributions():
    n = 3000
    _, d = make_policy("augmix")(batch(n=n, h=8, w=8), generator=gen(14), return_params=True)
    depth, op = d["depth"], d["ops"]
    assert all(within_sigmas(c, 3 * n, 1 / 3) for c in torch.bincount(depth.flatten(), minlength=4)[1:].tolist())
    active = op[op >= 0]
    assert len(active) == int(depth.sum())
    assert all(within_sigmas(c, len(active), 1 / 9) for c in torch.bincount(active, minlength=9).tolist())
    levels = d["levels"][op >= 0]
    assert 0.1 <= levels.min() and levels.max() < 3 and abs(levels.mean() - 1.55) < 0.05
    assert within_sigmas((d["signs"][op >= 0] < 0).sum(), len(active), 0.5)
    assert torch.allclose(d["weights"].sum(1), torch.ones(n, dtype=d["weights"].dtype))
    assert abs(d["weights"].mean() - 1 / 3) < 0.01 and abs(d["weights"][:, 0].std() - math.sqrt(2 / 36)) < 0.01
    assert abs(d["m"].mean() - 0.5) < 0.02 and abs(d["m"].std() - math.sqrt(1 / 12)) < 0.02  # Beta(1, 1)
    assert len({tuple(r) for r in op[:, 0].tolist()}) > 300  # every image draws its own chains


def test_augmix_all_ops_adds_the_colour_ops():
    x = batch(n=300, h=8, w=8)
    _, d = make_policy("augmix", all_ops=True)(x, generator=gen(15), return_params=True)
    assert d["op_names"][9:] == ["color", "contrast", "brightness", "sharpness"]
    assert int((d["ops"] >= 9).sum()) > 0
    x = batch(n=12)
    out, d = make_policy("augmix", all_ops=True)(x, generator=gen(16), return_params=True, dtype=torch.float32)
    for i in range(len(x)):
        assert (out[i].double() - rebuild_augmix(d, i, 40, 36, official_op)).abs().max() <= 1 / 255 + 1e-6


def test_augmix_views_for_the_jsd_loss():
    x = batch()
    policy = make_policy("augmix", base="none")
    g = gen(17)
    a, b = policy(x, generator=g, dtype=torch.float32), policy(x, generator=g, dtype=torch.float32)
    assert a.dtype == b.dtype == torch.float32 and not torch.equal(a, b)
    assert (a - x.float() / 255).abs().mean() < 0.2  # a mix that keeps the clean image in it
    fixed = make_policy("augmix", depth=2, width=1)
    _, d = fixed(x, generator=g, return_params=True)
    assert bool((d["depth"] == 2).all()) and bool((d["ops"] >= 0).all())


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_outputs_are_ordinary_tensors(name):
    """Work done in inference mode inside the ops must not leak: the output (and the recorded
    draws) can be modified in place and fed to a model that trains."""
    out, d = make_policy(name)(batch(), generator=gen(18), return_params=True)
    assert not out.is_inference() and not any(v.is_inference() for v in d.values() if isinstance(v, torch.Tensor))
    weight = torch.ones(2, 3, 3, 3, requires_grad=True)
    torch.nn.functional.conv2d(out.float(), weight).sum().backward()
    assert weight.grad is not None
    out.add_(0)  # in place, outside inference mode


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_sync_free_device_paths_agree_with_the_cpu_ones(name, monkeypatch):
    """GPUs take paths without device syncs (grid_sample for every affine op, histograms by
    scatter_add, flips by select); run here on CPU, they give the CPU paths' results up to the
    rounding of one-axis bilinear resampling (1 level on rare pixels)."""
    x = batch(n=48)
    as_float = torch.float32 if name == "augmix" else None
    cpu = make_policy(name)(x, generator=gen(19), dtype=as_float)
    monkeypatch.setattr(common, "_host", lambda t: False)
    device = make_policy(name)(x, generator=gen(19), dtype=as_float)
    if name == "augmix":
        diff = (cpu - device).abs()
        assert diff.max() <= 1 / 255 + 1e-6 and (diff < 1e-6).float().mean() >= 0.99
    else:
        diff = (cpu.int() - device.int()).abs()
        assert diff.max() <= 1 and (diff == 0).float().mean() >= 0.99
