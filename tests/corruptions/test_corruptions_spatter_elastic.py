"""spatter and elastic_transform: golden statistics, the OpenCV/SciPy steps they reproduce, and the
corruption contract. Expected numbers marked "OpenCV" were measured with OpenCV 4.10 / SciPy 1.13
(the golden files' versions) during development; the tests themselves need neither."""

import json

import numpy as np
import pytest
import torch

from robench.corruptions import corrupt, elastic, spatter
from robench.corruptions._ops import gaussian_filter_2d, gaussian_kernel1d


def golden_inputs(shared_dir) -> torch.Tensor:
    return torch.from_numpy(np.load(shared_dir / "golden" / "cifar10c" / "inputs.npy")).permute(0, 3, 1, 2).contiguous()


def check_golden_stats(shared_dir, name: str, copies: int = 4) -> None:
    """Per severity, the mean PSNR (per image, peak 255, over all values) and mean intensity within
    random_stats.json's tolerance; the 128 inputs are repeated to steady the estimate."""
    stats = json.loads((shared_dir / "golden" / "cifar10c" / "random_stats.json").read_text())[name]
    clean = golden_inputs(shared_dir).repeat(copies, 1, 1, 1)
    for row in stats:
        out = corrupt(clean, name, row["severity"], seed=row["severity"])
        mse = (out.double() - clean.double()).pow(2).flatten(1).mean(1)
        psnr = (10 * torch.log10(255.0**2 / mse)).mean().item()
        mean = out.double().mean().item()
        assert abs(psnr - row["psnr"]) <= row["tol_psnr"], (name, row, psnr)
        assert abs(mean - row["mean"]) <= row["tol_mean"], (name, row, mean)


@pytest.mark.parametrize("name", ["spatter", "elastic_transform"])
def test_matches_golden_statistics(shared_dir, name):
    check_golden_stats(shared_dir, name)


@pytest.mark.parametrize("name", ["spatter", "elastic_transform"])
def test_contract(name):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=gen)
    for severity in (1, 4):
        out = corrupt(images, name, severity, seed=7)
        assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
        assert torch.equal(out, corrupt(images, name, severity, seed=7))  # deterministic for a seed
        assert not torch.equal(out, corrupt(images, name, severity, seed=8))  # seeds matter
    same = images[:1].repeat(4, 1, 1, 1)
    outs = corrupt(same, name, 2, seed=0)
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[2], outs[3])  # per-image draws
    odd = torch.randint(0, 256, (3, 3, 48, 40), dtype=torch.uint8, generator=gen)
    for severity in (2, 5):
        out = corrupt(odd, name, severity, seed=0, protocol="scaled")
        assert out.shape == odd.shape and (out.int() - odd.int()).abs().float().mean() > 1


# ---- spatter's OpenCV steps ---------------------------------------------------------------------


def test_canny_keeps_one_column_of_a_step_edge():
    """Non-maximum suppression is strict on the left, lenient on the right (m > left, m >= right),
    so a vertical step between columns 15 and 16 leaves exactly column 15, on every row."""
    image = torch.zeros(1, 32, 32, dtype=torch.int64)
    image[:, :, 16:] = 200
    edges = spatter.canny(image)
    assert edges[0, :, 15].all() and edges.sum() == 32


def test_canny_hysteresis_follows_weak_edges_only_from_strong_ones():
    """A step of 20 gives a Sobel magnitude of 80: above the low (50), below the high (150) threshold."""
    weak_only = torch.zeros(1, 32, 32, dtype=torch.int64)
    weak_only[:, :, 16:] = 20
    assert not spatter.canny(weak_only).any()
    mixed = weak_only.clone()
    mixed[:, :8, 16:] = 200  # a strong stretch at the top continues as a weak one below
    # OpenCV: column 15 down to row 6, along row 7 to the right, (8, 16), then column 15 again.
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[:7, 15] = True
    expected[7, 16:] = True
    expected[8, 16] = True
    expected[9:, 15] = True
    assert torch.equal(spatter.canny(mixed)[0], expected)


def test_distance_transform_reproduces_opencv_float_sums():
    """One edge pixel: distances along the 5x5 chamfer mask, accumulated in float32 (OpenCV)."""
    edges = torch.zeros(1, 32, 32, dtype=torch.bool)
    edges[0, 10, 10] = True
    dist = spatter.distance_transform(edges)[0]
    opencv = {
        (0, 1): 1.0, (1, 1): 1.399999976158142, (1, 2): 2.196899890899658, (1, 3): 3.196899890899658,
        (2, 2): 2.799999952316284, (3, 3): 4.199999809265137, (2, 5): 5.393799781799316, (5, 5): 7.0,
        (2, 10): 10.393798828125, (8, 9): 11.996898651123047,
    }
    for (dy, dx), value in opencv.items():
        assert dist[10 + dy, 10 + dx].item() == value, (dy, dx)
        assert dist[10 - dy, 10 - dx].item() == value, (dy, dx)  # the backward pass, mirrored
    assert dist[10, 10] == 0 and dist.max() == 20  # truncated at 20
    assert spatter.distance_transform(torch.zeros(1, 8, 8, dtype=torch.bool)).eq(20).all()  # no edges


def test_equalize_hist_matches_opencv_levels():
    """A histogram where the float32 scale 255/918 matters: level 2 sits at 87.5000004 and rounds to
    88 in OpenCV (computing 255 * (1/918) instead gives 87)."""
    counts = {0: 106, 1: 167, 2: 148, 3: 103, 4: 72, 5: 73, 6: 68, 7: 53, 8: 41, 9: 37, 10: 32,
              11: 28, 12: 20, 13: 20, 14: 15, 15: 15, 16: 18, 17: 8}
    opencv = {0: 0, 1: 46, 2: 88, 3: 116, 4: 136, 5: 156, 6: 175, 7: 190, 8: 201, 9: 212, 10: 221,
              11: 228, 12: 234, 13: 239, 14: 244, 15: 248, 16: 253, 17: 255}
    values = torch.cat([torch.full((c,), v) for v, c in counts.items()]).view(1, 32, 32)
    out = spatter.equalize_hist(values)
    for v, expected in opencv.items():
        assert torch.all(out[values == v] == expected), v
    flat = torch.full((1, 4, 4), 7)
    assert torch.equal(spatter.equalize_hist(flat), flat)  # a single level is left alone


def test_water_layer_wraps_like_numpy_uint8():
    layer = torch.zeros(1, 32, 32, dtype=torch.float64)
    layer[0, 4:12, 4:12] = 1.01  # 257.55 -> 257 -> wraps to 1
    layer[0, 20:28, 20:28] = 0.8  # 204
    l8, _ = spatter.water_mask(layer)
    assert l8[0, 5, 5] == 1 and l8[0, 21, 21] == 204 and l8[0, 0, 0] == 0


def test_spatter_empty_water_layer_gives_black_like_the_generator():
    """An all-zero layer makes m = 0/0 = NaN in the generator, and np.uint8(NaN) is 0."""
    images = torch.full((2, 3, 32, 32), 120, dtype=torch.uint8)
    noise = torch.full((2, 32, 32), -10.0, dtype=torch.float64)  # every value below the threshold
    assert spatter.apply(images, 1, noise).eq(0).all()
    mud = spatter.apply(images, 4, noise)  # mud with no mud leaves the image (up to float32 truncation)
    assert (mud.int() - images.int()).abs().max() <= 1


def test_spatter_keeps_its_drops_at_other_sizes():
    """The scaled blur comes with a scaled noise amplitude, so larger images still get drops (an
    empty water layer would blacken them) and are not flooded either."""
    images = torch.full((8, 3, 96, 80), 60, dtype=torch.uint8)
    for severity in (1, 2, 3):
        out = corrupt(images, "spatter", severity, seed=0, protocol="scaled")
        changed = (out != images).any(1).flatten(1).float().mean(1)  # share of pixels touched
        assert (changed > 0.002).all() and (changed < 0.5).all(), (severity, changed)


def test_spatter_water_is_turquoise_and_mud_is_brown():
    images = torch.full((16, 3, 32, 32), 40, dtype=torch.uint8)
    water = corrupt(images, "spatter", 3, seed=0).double() - 40
    assert water.clamp(min=0).sum((0, 2, 3)).argmin() == 0  # red gains least: colour (175, 238, 238)
    mud = corrupt(images, "spatter", 5, seed=0).double()
    changed = (mud - 40).abs().sum(1) > 0
    assert changed.any()
    pixels = mud.permute(0, 2, 3, 1)[changed]
    assert (pixels[:, 0] >= pixels[:, 1]).all() and (pixels[:, 1] >= pixels[:, 2]).all()  # (63, 42, 20)


# ---- elastic's OpenCV / SciPy steps -------------------------------------------------------------


def test_affine_transform_maps_the_points():
    dst = torch.tensor(elastic.affine_points(32, 32)) + torch.tensor([[[0.5, -1.0], [2.0, 0.25], [-1.5, 1.0]]])
    m = elastic.get_affine_transform(dst, 32, 32).view(2, 3)
    src = torch.cat([torch.tensor(elastic.affine_points(32, 32), dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)], 1)
    assert torch.allclose(src @ m.T, dst[0].double(), atol=1e-12)


def test_warp_affine_quantises_positions_to_1_32_px():
    """A shift by 0.3 px samples at x - 0.3, which OpenCV's fixed point rounds to x - 1 + 22/32
    (not x - 1 + 0.7): out = v[x-1] * 10/32 + v[x] * 22/32 on a ramp, exactly in float32."""
    ramp = torch.arange(32, dtype=torch.float32).repeat(32, 1)[None, None] / 32
    m = torch.tensor([[1.0, 0.0, 0.3, 0.0, 1.0, 0.0]], dtype=torch.float64)
    out = elastic.warp_affine(ramp, m)[0, 0]
    x = torch.arange(1, 32)
    expected = ramp[0, 0, 0, x - 1] * (10 / 32) + ramp[0, 0, 0, x] * (22 / 32)
    assert torch.equal(out[:, 1:], expected.expand(32, -1))
    # Column 0 samples at -0.3: reflect-101 makes the missing column -1 a copy of column 1.
    assert torch.allclose(out[:, 0], ramp[0, 0, 0, 1] * (10 / 32) + ramp[0, 0, 0, 0] * (22 / 32))


def test_map_coordinates_reflect_matches_scipy():
    """scipy.ndimage.map_coordinates(order=1, mode='reflect') on [0, 10, 20, 30, 40] (SciPy 1.13)."""
    coords = [-2.6, -1.7, -1.2, -1.0, -0.7, -0.5, -0.3, 0.0, 0.3, 3.7, 4.0, 4.2, 4.5, 4.8, 5.0, 5.3, 6.1]
    scipy = [16.0, 7.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 37.0, 40.0, 40.0, 40.0, 40.0, 40.0, 37.0, 29.0]
    w = len(coords)
    image = torch.tensor([0.0, 10, 20, 30, 40]).view(1, 1, 5, 1).expand(1, 1, 5, w).contiguous()
    dy = torch.zeros(1, 5, w)
    dy[0, 0] = torch.tensor(coords)
    out = elastic.map_coordinates_reflect(image, dy, torch.zeros(1, 5, w))
    assert torch.allclose(out[0, 0, 0], torch.tensor(scipy), atol=1e-4)


def _correlate_direct(x, sigma, mode, truncate):
    """The definition, one output sample at a time: rows then columns, each sample the weighted sum of
    its neighbours, indices past the border reflected (d c b a | a b c d) or clamped to the edge."""
    kernel = gaussian_kernel1d(sigma, truncate)
    radius = (len(kernel) - 1) // 2

    def source(i, size):
        if mode == "nearest":
            return min(max(i, 0), size - 1)
        i %= 2 * size
        return i if i < size else 2 * size - 1 - i

    def along(a, axis):
        size = a.shape[axis]
        out = torch.zeros_like(a)
        for i in range(size):
            for t, k in enumerate(kernel):
                out.select(axis, i).add_(a.select(axis, source(i + t - radius, size)) * k)
        return out

    return along(along(x, 1), 2)


@pytest.mark.parametrize("mode", ["reflect", "nearest"])
def test_gaussian_matrix_filter_matches_scipy_semantics(mode):
    x = torch.rand(3, 32, 24, dtype=torch.float64)
    for sigma, truncate in [(6.4, 3.0), (0.96, 3.0), (0.7, 4.0)]:
        ours = gaussian_filter_2d(x, sigma, mode, truncate)
        assert torch.allclose(ours, _correlate_direct(x, sigma, mode, truncate), atol=1e-12)


def test_elastic_severity_1_is_the_affine_warp_alone():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    offsets = torch.zeros(4, 3, 2)
    assert torch.equal(elastic.apply(images, 1, offsets, None, None), images)  # identity affine
    offsets[:, :, 0] = 1.0  # shift right by one pixel
    out = elastic.apply(images, 1, offsets, None, None)
    assert torch.equal(out[:, :, :, 1:], images[:, :, :, :-1])
    assert torch.equal(out[:, :, :, 0], images[:, :, :, 1])  # reflect-101 at the border
