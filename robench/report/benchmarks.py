"""What a report needs to know about the benchmarks an eval CSV can hold (its `benchmark` column):
the defaults of files written before the column existed, and the cell names of CIFAR-10-C-bar and
CIFAR-10-P that their leaderboard columns average over. Imports no torch.

    c      the -C corruptions (robench.corruptions.protocol); one leaderboard table per protocol
    c-bar  CIFAR-10-C-bar (Mintun et al. 2021): 10 corruptions x 5 severities -> 'C-bar error'
    p      CIFAR-10-P (Hendrycks & Dietterich 2019): per perturbation `flip_prob` and `top5_dist`
           (fractions) instead of an error -> 'mFP' and 'mT5D'
"""

from __future__ import annotations

from robench.corruptions.benchmarks import CBAR, PERTURBATIONS  # noqa: F401 (CBAR: the report's import point)
from robench.corruptions.protocol import SEVERITIES
from robench.runfolder.files import SETTING_DEFAULTS

# The value a reader gives a column an older eval CSV does not have (the contract of the eval CSV).
DEFAULTS = SETTING_DEFAULTS
COLUMNS = tuple(DEFAULTS)
# The leaderboard table of the files written before these columns: its output stays what it was.
DEFAULT_TABLE = (DEFAULTS["protocol"], DEFAULTS["subset"])

# The cell names of C-bar and -P (robench.corruptions.benchmarks); C-bar has -C's severities.
CBAR_SEVERITIES = SEVERITIES
P_PERTURBATIONS = PERTURBATIONS
# -P columns of the eval CSV (fractions) -> the leaderboard column of their mean over P_PERTURBATIONS (in %).
STABILITY = {"flip_prob": "mFP", "top5_dist": "mT5D"}
# The leaderboard column of the mean C-bar error over its 10 x 5 cells.
CBAR_LABEL = "C-bar error"
