"""What a report needs to know about the benchmarks an eval CSV can hold (its `benchmark` column):
the defaults of files written before the column existed, and the cell names of CIFAR-10-C-bar and
CIFAR-10-P that their leaderboard columns average over. Imports no torch.

    c      the -C corruptions (robench.corruptions.protocol); one leaderboard table per protocol
    c-bar  CIFAR-10-C-bar (Mintun et al. 2021): 10 corruptions x 5 severities -> 'C-bar error'
    p      CIFAR-10-P (Hendrycks & Dietterich 2019): per perturbation `flip_prob` and `top5_dist`
           (fractions) instead of an error -> 'mFP' and 'mT5D'
"""

from __future__ import annotations

from robench.corruptions.cbar_protocol import CBAR_CORRUPTIONS, SEVERITIES

# The value a reader gives a column an older eval CSV does not have (the contract of the eval CSV).
DEFAULTS = {"benchmark": "c", "protocol": "cifar10-c", "storage": "none", "subset": "all"}
COLUMNS = tuple(DEFAULTS)
# The leaderboard table of the files written before these columns: its output stays what it was.
DEFAULT_TABLE = (DEFAULTS["protocol"], DEFAULTS["subset"])

# CIFAR-10-C-bar's 10 corruptions and severities, in its csv's order (the generator's spelling
# "abberation" kept): written once in the torch-free corruptions.cbar_protocol.
CBAR, CBAR_SEVERITIES = CBAR_CORRUPTIONS, SEVERITIES

# The 10 perturbations of the official CIFAR-10-P evaluation (hendrycks/robustness
# ImageNet-P/cifar-p-eval.py), whose means are mFP and mT5D.
P_PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter", "brightness", "translate",
                   "rotate", "tilt", "scale")
# -P columns of the eval CSV (fractions) -> the leaderboard column of their mean over P_PERTURBATIONS (in %).
STABILITY = {"flip_prob": "mFP", "top5_dist": "mT5D"}
# The leaderboard column of the mean C-bar error over its 10 x 5 cells.
CBAR_LABEL = "C-bar error"
