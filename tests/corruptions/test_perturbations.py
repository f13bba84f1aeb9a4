"""robench.corruptions.perturbations: the CIFAR-10-P sequences.

Shapes and frame counts, determinism per seed and independence from the batch size, and the
frame-to-frame change against the official generator's parameters on small inputs (translate
steps by 1 px from -7 px, brightness steps V by 0.015, rotate / scale are identity at their middle
frame and equal Pillow's AFFINE transform with torchvision 0.2's matrix, the noises keep frame 0
clean). The whole sequences were also compared with the official generator's own code (see
docs/perturbations.md and benchmarks/perturbations.py): those need its dependencies, not these tests."""

import numpy as np
import pytest
import torch
from PIL import Image

from robench.corruptions import perturbations as P
from robench.errors import RobenchError

pytestmark = pytest.mark.usefixtures("one_thread")


def images(n=3, seed=0):
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def flat(value, n=1):
    return torch.full((n, 3, 32, 32), value, dtype=torch.uint8)


def test_registry_holds_the_ten_official_perturbations_in_order():
    P.check_registry()
    assert P.FRAMES["translate"] == 16 and P.FRAMES["motion_blur"] == 21
    assert all(P.FRAMES[name] == 31 for name in P.PERTURBATIONS if name not in ("translate", "motion_blur"))


@pytest.mark.parametrize("name", P.PERTURBATIONS)
def test_shapes_dtype_and_frame_counts(name):
    out = P.perturb(images(2), name, [1, 2])
    assert out.dtype == torch.uint8 and out.shape == (2, P.FRAMES[name], 3, 32, 32)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "spatter"])
def test_random_sequences_depend_on_the_seed_not_on_the_batch(name):
    x = images(3)
    whole = torch.cat([b for _, b in P.generated_sequences(x, name, seed=7, batch=3)])
    ones = torch.cat([b for _, b in P.generated_sequences(x, name, seed=7, batch=1)])
    assert torch.equal(whole, ones)
    assert torch.equal(whole, torch.cat([b for _, b in P.generated_sequences(x, name, seed=7, batch=2)]))
    assert not torch.equal(whole, torch.cat([b for _, b in P.generated_sequences(x, name, seed=8, batch=3)]))
    # a slice of the test set keeps the sequences it has in the whole set
    tail = torch.cat([b for _, b in P.generated_sequences(x[1:], name, seed=7, batch=3, offset=1)])
    assert torch.equal(tail, whole[1:])


def test_noises_keep_frame_0_clean_and_redraw_every_frame():
    x = flat(128, 2)
    for name, spread in (("gaussian_noise", 0.02 * 255), ("shot_noise", 255 * (128 / 255 / 700) ** 0.5)):
        out = P.perturb(x, name, [0, 1])
        assert torch.equal(out[:, 0], x)
        noise = out[:, 1:].float() - 128
        assert noise.std().item() == pytest.approx(spread, rel=0.1)
        assert not torch.equal(out[:, 1], out[:, 2])  # fresh noise per frame


def test_translate_moves_one_pixel_per_frame_from_minus_7():
    x = images(1)
    out = P.perturb(x, "translate", [0])[0]
    assert torch.equal(out[7], x[0])  # shift i - 7 = 0
    for i in range(16):
        shift = i - 7
        expected = torch.zeros_like(x[0])
        if shift >= 0:
            expected[..., shift:] = x[0][..., : 32 - shift]
        else:
            expected[..., :shift] = x[0][..., -shift:]
        assert torch.equal(out[i], expected), i


def test_brightness_steps_v_by_the_official_deltas():
    # grey pixels have S = 0, so each channel is V: uint8((v / 255 + (i - 15) * 0.015, clipped) * 255)
    out = P.perturb(flat(100), "brightness", [0])[0]
    for i in range(31):
        expected = int(min(max(100 / 255 + (i - 15) * 1.5 / 100, 0.0), 1.0) * 255)
        assert (out[i] == expected).all(), i


@pytest.mark.parametrize("name,frame", [("rotate", 15), ("scale", 15), ("zoom_blur", 0)])
def test_geometry_is_the_identity_at_its_neutral_frame(name, frame):
    x = images(2)
    assert torch.equal(P.perturb(x, name, [0, 0])[:, frame], x)


@pytest.mark.parametrize("name", ["rotate", "scale"])
def test_rotate_and_scale_equal_pillows_affine_with_torchvision_02s_matrix(name):
    x = images(2)
    out = P.perturb(x, name, [0, 0])
    for i in (0, 4, 22, 30):
        spec = {"angle": i - 15} if name == "rotate" else {"scale": (i * 2 + 70) / 100.0}
        matrix = P.inverse_affine(**spec)
        assert matrix[2] != 0 or matrix[5] != 0  # the centre (16.5, 16.5) moves the origin
        for k in range(2):
            pil = Image.fromarray(x[k].permute(1, 2, 0).numpy()).transform((32, 32), Image.AFFINE, matrix,
                                                                         Image.BILINEAR)
            assert np.array_equal(out[k, i].permute(1, 2, 0).numpy(), np.asarray(pil)), (name, i, k)


def test_rotation_angles_and_scales_follow_the_official_steps():
    assert P.inverse_affine(angle=0.0) == pytest.approx((1, 0, 0, 0, 1, 0), abs=1e-12)
    # scale s about (16.5, 16.5): the inverse map is x / s + 16.5 (1 - 1 / s)
    m = P.inverse_affine(scale=0.7)
    assert m[0] == pytest.approx(1 / 0.7) and m[2] == pytest.approx(16.5 * (1 - 1 / 0.7))


def test_motion_blur_turns_by_9_degrees_per_frame():
    from robench.corruptions.blur import motion_blur_q16

    x = images(1)
    out = P.perturb(x, "motion_blur", [0])[0]
    for i in (0, 10, 20):
        expected = motion_blur_q16(x, 6, 1.8, torch.tensor([(i - 20) * 9.0], dtype=torch.float64))
        assert torch.equal(out[i], expected[0]), i


def test_spatter_drips_down_frame_by_frame():
    out = P.perturb(flat(0, 4), "spatter", [3, 4, 5, 6]).float()
    # the water's mass (on a black image) moves towards the bottom rows as the frames go on
    rows = torch.arange(32.0).view(1, 1, 32, 1)
    centre = [(out[:, t].sum(1, keepdim=True) * rows).sum() / out[:, t].sum().clamp(min=1) for t in (0, 30)]
    assert centre[1] > centre[0] + 3


def test_bad_images_and_names_are_one_line_errors():
    with pytest.raises(RobenchError, match="32 x 32"):
        P.perturb(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "rotate", [0])
    with pytest.raises(RobenchError, match="perturbation"):
        list(P.generated_sequences(images(1), "fog", seed=0))
