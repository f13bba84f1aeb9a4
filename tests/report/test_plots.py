"""robench.report.plots: a report's figures are readable PNGs, differ between result sets and are
byte-identical for the same results (no timestamps)."""

import pytest
from formats import png_size
from runfolders import seeds

from robench.report import leaderboard as R

pytest.importorskip("matplotlib")


def test_plots_are_readable_pngs_and_differ_between_result_sets(two_groups, tmp_path):
    from robench.report.plots import figures, write_plots

    rep = R.report([two_groups], baseline="standard")
    written = write_plots(rep, tmp_path / "a")
    assert sorted(p.name for p in written) == ["calibration-vs-severity.png", "clean-vs-mce.png",
                                               "corruption-heatmap.png", "error-vs-severity.png"]
    for path in written:
        width, height = png_size(path.read_bytes())
        assert width >= 600 and height >= 300, path.name
    other = tmp_path / "other"
    seeds(other, "standard", [40.0, 45.0, 41.0])
    seeds(other, "augmix", [10.0, 12.5, 11.0], policy="augmix", jsd=True)
    changed = figures(R.report([other]))
    assert "calibration-vs-severity" not in changed  # no calibration columns, no calibration plot
    for name in changed:
        assert changed[name] != (tmp_path / "a" / f"{name}.png").read_bytes(), name
    # The same results draw the same bytes (no timestamps).
    assert figures(rep)["error-vs-severity"] == (tmp_path / "a" / "error-vs-severity.png").read_bytes()
