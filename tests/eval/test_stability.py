"""robench.eval.stability: flip probability and ranking distances against a re-statement of the
official functions (ImageNet-P/cifar-p-eval.py), written here in NumPy loops from reading that code.

The fixtures have ties in the logits (so the ordinal tie-break by class index matters), sequences
whose predictions flip back and forth (noise compares with frame 0, the others consecutively), and
a difficulty of 2 (ImageNet-P's step for non-noise sequences)."""

import numpy as np
import pytest
import torch

from robench.eval import stability

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- the re-statement (plain loops, the official order of operations) ----------------------------


def ordinal_ranks(frame):
    """scipy.stats.rankdata(-frame, method='ordinal'): rank 1 to the largest value, ties in order."""
    ranks = np.empty(len(frame), dtype=np.int64)
    order = sorted(range(len(frame)), key=lambda j: (-frame[j], j))
    for rank, j in enumerate(order, start=1):
        ranks[j] = rank
    return ranks


def official_dist(sigma, mode, classes):
    cum_sum_top5 = np.cumsum(np.asarray([0] + [1] * 5 + [0] * (classes - 1 - 5)))
    recip = 1.0 / np.arange(1, classes + 1)
    if mode == "top5":
        return np.sum(np.abs(cum_sum_top5[:5] - cum_sum_top5[sigma - 1][:5]))
    return np.sum(np.abs(recip - recip[sigma - 1]) * recip)


def official_ranking_dist(ranks, noise, mode, difficulty=1):
    classes = ranks.shape[-1]
    step = 1 if noise else difficulty
    result = 0
    for vid in ranks:
        per_vid = []
        for i in range(step):
            perm1 = vid[i]
            inv = np.argsort(perm1)
            for perm2 in vid[i::step][1:]:
                per_vid.append(official_dist(perm2[inv], mode, classes))
                if not noise:
                    perm1, inv = perm2, np.argsort(perm2)
        result += np.mean(per_vid) / len(ranks)
    return result


def official_flip_prob(predictions, noise, difficulty=1):
    step = 1 if noise else difficulty
    result = 0
    for vid in predictions:
        per_vid = []
        for i in range(step):
            prev = vid[i]
            for pred in vid[i::step][1:]:
                per_vid.append(int(prev != pred))
                if not noise:
                    prev = pred
        result += np.mean(per_vid) / len(predictions)
    return result


# ---- fixtures ---------------------------------------------------------------------------------------


def tied_logits(n=7, frames=9, classes=10, seed=0):
    """Logits on a coarse grid (values in {0, 0.5, ..., 3}): many ties within each frame, and
    predictions that change between frames."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 7, size=(n, frames, classes)) / 2).astype(np.float32)


@pytest.fixture(params=[10, 100], ids=["cifar10", "cifar100"])
def logits(request):
    return tied_logits(classes=request.param)


def test_ranks_are_scipys_ordinal_ranks_of_minus_the_logits(logits):
    got = stability.ranks(torch.from_numpy(logits)).numpy()
    expected = np.array([[ordinal_ranks(frame) for frame in vid] for vid in logits])
    assert (got == expected).all()
    # ties are broken by class index: two equal best logits get ranks 1 and 2 in index order
    assert stability.ranks(torch.tensor([[0.0, 3.0, 1.0, 3.0]])).tolist() == [[4, 1, 3, 2]]


@pytest.mark.parametrize("noise", [True, False], ids=["noise", "consecutive"])
@pytest.mark.parametrize("difficulty", [1, 2])
def test_flip_prob_equals_the_official_function(logits, noise, difficulty):
    predictions = logits.argmax(-1)  # numpy's argmax: the first maximum, as torch's
    got = stability.flip_prob(torch.from_numpy(predictions), noise, difficulty)
    assert got == pytest.approx(official_flip_prob(predictions, noise, difficulty), abs=1e-12)


@pytest.mark.parametrize("mode", ["top5", "zipf"])
@pytest.mark.parametrize("noise", [True, False], ids=["noise", "consecutive"])
@pytest.mark.parametrize("difficulty", [1, 2])
def test_ranking_dist_equals_the_official_function(logits, mode, noise, difficulty):
    ranks = np.array([[ordinal_ranks(frame) for frame in vid] for vid in logits])
    got = stability.ranking_dist(stability.ranks(torch.from_numpy(logits)), noise, mode, difficulty)
    assert got == pytest.approx(official_ranking_dist(ranks, noise, mode, difficulty), rel=1e-12, abs=1e-15)


def test_noise_compares_with_the_first_frame_and_the_others_consecutively():
    # predictions A B A B: against frame 0 two of three differ; consecutively all three do
    predictions = torch.tensor([[0, 1, 0, 1]])
    assert stability.flip_prob(predictions, noise=True) == pytest.approx(2 / 3)
    assert stability.flip_prob(predictions, noise=False) == pytest.approx(1.0)
    assert stability.is_noise("gaussian_noise") and stability.is_noise("shot_noise")
    assert not stability.is_noise("translate")


def test_top5_and_zipf_distances_of_hand_made_rankings():
    # frame 1 swaps the classes ranked 1 and 2: sigma = (2, 1, 3, ...): top-5 |0-1| + |1-0| = 2,
    # Zipf |1 - 1/2| * 1 + |1/2 - 1| * 1/2 = 0.75
    first = torch.arange(10, 0, -1, dtype=torch.float32)  # class 0 best
    second = first.clone()
    second[[0, 1]] = second[[1, 0]]
    ranks = stability.ranks(torch.stack([first, second])[None])
    assert stability.ranking_dist(ranks, noise=False, mode="top5") == pytest.approx(2.0)
    assert stability.ranking_dist(ranks, noise=False, mode="zipf") == pytest.approx(0.75)
    # identical frames: distance 0
    same = stability.ranks(torch.stack([first, first])[None])
    assert stability.ranking_dist(same, noise=False, mode="zipf") == 0.0


def test_per_sequence_values_add_up_over_chunks(logits):
    # a caller streaming chunks of sequences sums per-sequence values: the same mean as one call
    whole = stability.sequence_stats(torch.from_numpy(logits), "rotate")
    parts = [stability.sequence_stats(torch.from_numpy(part), "rotate") for part in np.array_split(logits, 3)]
    for key, value in whole.items():
        assert torch.cat([p[key] for p in parts]).sum().item() == pytest.approx(value.sum().item(), rel=1e-12)


def test_means_over_the_perturbations_and_normalisation():
    rows = [{"perturbation": "a", "flip_prob": 0.1, "top5_dist": 1.0, "zipf_dist": 0.2},
            {"perturbation": "b", "flip_prob": 0.3, "top5_dist": 2.0, "zipf_dist": 0.4}]
    assert stability.means(rows) == pytest.approx({"mFP": 0.2, "mT5D": 1.5, "mZD": 0.3})
    with pytest.raises(ValueError):
        stability.means(rows, ["a", "c"])
    assert stability.normalised({"a": 0.1}, {"a": 0.4}) == {"a": 0.25}
