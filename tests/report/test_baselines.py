"""robench.report.baselines: AlexNet's published ImageNet-C errors, checked against the second place
they were published (the per-corruption means in the AugMix code, google-research/augmix imagenet.py
ALEXNET_ERR, 'taken from hendrycks/robustness')."""

import numpy as np
import pytest

from robench.corruptions.protocol import CORRUPTIONS, STANDARD
from robench.report.baselines import ALEXNET_IMAGENET_C, ALEXNET_IMAGENET_CLEAN_ERROR, alexnet_imagenet_c

# AugMix's ALEXNET_ERR, the 15 standard corruptions in order; the other 4 from the README's Average column.
PUBLISHED_MEANS = [0.886428, 0.894468, 0.922640, 0.819880, 0.826268, 0.785948, 0.798360, 0.866816, 0.826572,
                   0.819324, 0.564592, 0.853204, 0.646056, 0.717840, 0.606500, 0.845388, 0.787108, 0.717512, 0.658248]


def test_alexnet_table_matches_the_published_means():
    assert set(ALEXNET_IMAGENET_C) == set(CORRUPTIONS)
    for corruption, mean in zip(CORRUPTIONS, PUBLISHED_MEANS):
        assert np.mean(ALEXNET_IMAGENET_C[corruption]) == pytest.approx(mean, abs=5e-7), corruption
    errors, clean = alexnet_imagenet_c()
    assert errors.shape == (19, 5) and errors[0, 0] == pytest.approx(69.528) and clean == ALEXNET_IMAGENET_CLEAN_ERROR
    # Every cell a count of 50,000 images: the published fractions have 5 decimals.
    assert np.allclose(errors * 500, np.round(errors * 500), atol=1e-6)
    assert errors[:len(STANDARD)].mean() == pytest.approx(100 * np.mean(PUBLISHED_MEANS[:15]))
