"""Fixtures of the report tests (tests/report/): `two_groups`, a results folder of two groups of
three seeds with calibration columns, and one run never evaluated (written by tests/runfolders.py)."""

import pytest
from runfolders import make_run, seeds


def _calibration(i, c, s):
    return dict(nll=0.2 * s, brier=0.02 * s, ece=0.01 * s, rms_ce=0.015 * s)


@pytest.fixture(scope="module")
def two_groups(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    seeds(root, "standard", [30.0, 32.0, 31.0], calibration=_calibration)
    seeds(root, "augmix", [18.0, 19.5, 20.0], policy="augmix", jsd=True, calibration=_calibration)
    make_run(root, "unevaluated", errors=None, clean=6.25, lr=0.3)
    return root
