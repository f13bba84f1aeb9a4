"""Published baseline errors that normalise a benchmark's metrics. Imports no torch.

AlexNet on ImageNet-C (Hendrycks & Dietterich, ICLR 2019): the torchvision pretrained AlexNet's top-1
error on each released ImageNet-C cell, all 50,000 validation images, as the authors published
them in the README of github.com/hendrycks/robustness ("AlexNet ImageNet-C Error", added by pull
request #20 on 2019-10-10, commit 76d9393; since 2020-05-05 the README links the same numbers as a
spreadsheet). Written as there: fractions, severities 1-5. The per-corruption means of these
rows are the ALEXNET_ERR list of the AugMix code (google-research/augmix imagenet.py), which the
tests check. docs/metrics.md says why these and not RobustBench's 5,000-image AlexNet numbers.
"""

from __future__ import annotations

import numpy as np

from robench.corruptions.protocol import CORRUPTIONS

# The protocol whose leaderboard rows are normalised by AlexNet, and the columns they get.
ALEXNET_PROTOCOL = "imagenet-c"
ALEXNET_COLUMNS = ("mCE (AlexNet)", "rel. mCE (AlexNet)")

ALEXNET_IMAGENET_C = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
}
# AlexNet's clean top-1 error on the ImageNet validation set in %, the E_clean(AlexNet) of relative
# mCE. 43.45 is the figure robench was given for Hendrycks' mCE spreadsheet (not readable offline);
# the paper prints 43.5, torchvision's model card 100 - 56.522 = 43.478 (see docs/metrics.md).
ALEXNET_IMAGENET_CLEAN_ERROR = 43.45


def alexnet_imagenet_c() -> tuple[np.ndarray, float]:
    """AlexNet's ImageNet-C errors in % as an array (19 corruptions in protocol order, 5 severities),
    and its clean error in %: the `base` of leaderboard.normalised_mce and relative_mce."""
    return 100 * np.array([ALEXNET_IMAGENET_C[c] for c in CORRUPTIONS]), ALEXNET_IMAGENET_CLEAN_ERROR
