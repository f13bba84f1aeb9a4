"""Mixers: soft targets sum to 1 and weigh each source image by its share of the pixels (cutmix,
ricap) or by lambda (mixup); per-batch and per-sample draws; dtype and error contracts."""

import math

import pytest
import torch

from robench.augment import MIXERS, make_mixer
from robench.errors import RobenchError

N, K, H, W = 20, 20, 40, 36


pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors


def coded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Image k is the constant 10 k, labelled k: every output pixel names its source image."""
    images = (torch.arange(N, dtype=torch.uint8) * 10).view(N, 1, 1, 1).expand(N, 3, H, W).contiguous()
    return images, torch.arange(N)


def pixel_shares(mixed: torch.Tensor) -> torch.Tensor:
    """(N, K): the fraction of each output image's pixels that came from image k."""
    codes = (mixed * 255).round().long() // 10
    return torch.stack([(codes == k).float().mean(dim=(1, 2, 3)) for k in range(K)], 1)


def test_registry_and_params():
    assert set(MIXERS) == {"none", "mixup", "cutmix", "ricap"}
    assert MIXERS.params("mixup") == {"alpha": 1.0, "per_sample": False}
    assert MIXERS.params("cutmix") == {"alpha": 1.0, "prob": 0.5, "per_sample": False, "keep_larger": False}
    assert MIXERS.params("ricap") == {"beta": 0.3, "per_sample": False}


@pytest.mark.parametrize("call,needle", [
    (lambda: make_mixer("mixupp", 10), "unknown mixer 'mixupp'"),
    (lambda: make_mixer("cutmix", 10, prob=1.5), "prob"),
    (lambda: make_mixer("cutmix", 10, probability=0.5), "no parameter 'probability'"),
    (lambda: make_mixer("ricap", 0), "num_classes"),
])
def test_errors_are_one_line(call, needle):
    with pytest.raises(RobenchError, match=needle) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(MIXERS))
@pytest.mark.parametrize("per_sample", [False, True])
def test_soft_targets_match_pixel_shares(name, per_sample):
    params = {} if name == "none" else {"per_sample": per_sample}
    if name == "cutmix":
        params["prob"] = 1.0
    mixer = make_mixer(name, K, **params)
    images, labels = coded_batch()
    for seed in range(5):
        mixed, soft = mixer(images, labels, generator=torch.Generator().manual_seed(seed))
        assert mixed.dtype == soft.dtype == torch.float32 and mixed.shape == images.shape and soft.shape == (N, K)
        assert torch.allclose(soft.sum(1), torch.ones(N))
        if name != "mixup":
            assert torch.allclose(soft, pixel_shares(mixed), atol=1e-6)


def test_mixup_blends_with_lambda():
    images = torch.randint(0, 256, (N, 3, H, W), dtype=torch.uint8)
    labels = torch.randint(0, K, (N,))
    onehot = torch.nn.functional.one_hot(labels, K).float()
    for per_sample in (False, True):
        mixed, soft, d = make_mixer("mixup", K, per_sample=per_sample)(
            images, labels, generator=torch.Generator().manual_seed(0), return_params=True)
        lam, perm = d["lam"].float(), d["perm"]
        x = images.float() / 255
        assert torch.allclose(mixed, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm], atol=1e-6)
        assert torch.allclose(soft, lam.view(-1, 1) * onehot + (1 - lam.view(-1, 1)) * onehot[perm], atol=1e-6)
        assert (lam.unique().numel() == 1) != per_sample  # one lambda per batch by default


def test_cutmix_probability_and_kept_area():
    images, labels = coded_batch()
    mixer = make_mixer("cutmix", K)  # prob 0.5 per batch
    applied, kept = [], []
    for seed in range(400):
        _, soft, d = mixer(images, labels, generator=torch.Generator().manual_seed(seed), return_params=True)
        applied.append(bool(d["applied"][0]))
        assert bool((d["applied"] == d["applied"][0]).all())  # the whole batch or nothing
        if not d["applied"][0]:
            assert torch.equal(soft, torch.eye(K))
        else:
            kept.append(float(d["lam"][0]))
    assert abs(sum(applied) - 200) <= 5 * math.sqrt(100)
    assert 0.5 < sum(kept) / len(kept) < 0.75  # Beta(1, 1) box area, enlarged by clipping at the border
    _, soft = make_mixer("cutmix", K, prob=0.0)(images, labels)
    assert torch.equal(soft, torch.eye(K))
    _, _, d = make_mixer("cutmix", K, per_sample=True)(images, labels, generator=torch.Generator().manual_seed(1),
                                                       return_params=True)
    assert 0 < int(d["applied"].sum()) < N and d["lam"].unique().numel() > 2


def test_ricap_boundary_and_areas():
    images, labels = coded_batch()
    _, soft, d = make_mixer("ricap", K)(images, labels, generator=torch.Generator().manual_seed(2),
                                        return_params=True)
    assert torch.allclose(d["areas"].sum(1), torch.ones(N, dtype=d["areas"].dtype))
    assert bool((d["boundary"] == d["boundary"][0]).all())  # one boundary per batch by default
    bh, bw = d["boundary"][0].tolist()
    assert torch.allclose(d["areas"][0], torch.tensor([bw * bh, (W - bw) * bh, bw * (H - bh), (W - bw) * (H - bh)],
                                                      dtype=d["areas"].dtype) / (H * W))
    _, _, d = make_mixer("ricap", K, per_sample=True)(images, labels, generator=torch.Generator().manual_seed(2),
                                                      return_params=True)
    assert d["boundary"].unique(dim=0).shape[0] > 5


def test_inputs_float_images_and_soft_targets():
    images = torch.rand(N, 3, H, W)
    soft_in = torch.softmax(torch.randn(N, K), 1)
    mixed, soft = make_mixer("none", K)(images, soft_in)
    assert torch.equal(mixed, images) and torch.equal(soft, soft_in)
    mixed, soft = make_mixer("ricap", K)(images, soft_in, generator=torch.Generator().manual_seed(0))
    assert 0 <= mixed.min() and mixed.max() <= 1 and torch.allclose(soft.sum(1), torch.ones(N))


@pytest.mark.parametrize("name", ["mixup", "cutmix", "ricap"])
def test_generator_reproducibility(name):
    images, labels = coded_batch()
    mixer = make_mixer(name, K, per_sample=True)
    a = mixer(images, labels, generator=torch.Generator().manual_seed(5))
    b = mixer(images, labels, generator=torch.Generator().manual_seed(5))
    c = mixer(images, labels, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_empty_batch(name):
    mixed, soft = make_mixer(name, K)(torch.zeros(0, 3, H, W, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    assert mixed.shape == (0, 3, H, W) and mixed.dtype == torch.float32 and soft.shape == (0, K)


@pytest.mark.parametrize("keep_larger", [False, True])
def test_cutmix_keep_larger_never_pastes_the_larger_part(keep_larger):
    """keep_larger: lam = max(lam, 1 - lam) before cutting, so each image keeps at least half of itself."""
    mixer = make_mixer("cutmix", K, prob=1.0, per_sample=True, keep_larger=keep_larger)
    images, labels = coded_batch()
    kept = torch.cat([mixer(images, labels, generator=torch.Generator().manual_seed(seed), return_params=True)[2]["lam"]
                      for seed in range(10)])
    assert kept.numel() == 10 * N
    if keep_larger:
        assert bool((kept >= 0.5).all())
    else:
        assert bool((kept < 0.5).any())  # without it, boxes larger than half the image occur
