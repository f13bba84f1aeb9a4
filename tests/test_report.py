"""mCE arithmetic against hand-computed values, and the leaderboard's rendering."""

import pytest

from robench.corruptions import EXTRA, STANDARD
from robench.errors import RobenchError
from robench.report import Entry, leaderboard, markdown_table, normalised_mce, relative_mce, render


def entry(name, clean, error_of) -> Entry:
    errors = {("clean", 0): clean}
    for i, c in enumerate(STANDARD + EXTRA):
        for s in range(1, 6):
            errors[(c, s)] = error_of(i, c, s)
    return Entry(name, "small-cnn", "standard", "shapes10", "generated", errors)


def test_mce_is_the_plain_mean_over_15_by_5():
    # Corruption i at severity s has error i + s: mean over s is i + 3; over i = 0..14 it is 7 + 3 = 10.
    e = entry("a", 5.0, lambda i, c, s: float(i + s))
    assert e.mce == pytest.approx(10.0)
    # Extra corruptions are i = 15..18: mean (15+16+17+18)/4 + 3 = 19.5, and they do not enter mCE.
    assert e.extra_error == pytest.approx(19.5)
    assert e.corruption_error("gaussian_noise") == pytest.approx(3.0)
    assert e.severity_error(5) == pytest.approx(7 + 5)


def test_missing_cell_gives_no_mce():
    e = entry("a", 5.0, lambda i, c, s: 10.0)
    del e.errors[("fog", 4)]
    assert e.mce is None and e.corruption_error("fog") is None and e.extra_error == 10.0


def test_normalised_and_relative_mce_by_hand():
    base = entry("base", 10.0, lambda i, c, s: 20.0 + s)  # sum over s = 115, minus clean: 65
    ours = entry("ours", 5.0, lambda i, c, s: 10.0 + s)  # sum over s = 65, minus clean: 40
    assert normalised_mce(ours, base) == pytest.approx(100 * 65 / 115)
    assert relative_mce(ours, base) == pytest.approx(100 * 40 / 65)
    assert normalised_mce(base, base) == pytest.approx(100.0)


def test_leaderboard_sorted_by_mce_with_baseline_columns():
    worse = entry("worse", 8.0, lambda i, c, s: 30.0)
    better = entry("better", 6.0, lambda i, c, s: 12.0)
    header, rows = leaderboard([worse, better], baseline="worse")
    assert [r[0] for r in rows] == ["better", "worse"]
    assert header[5:10] == ["clean", "mCE", "extra", "norm. mCE", "rel. mCE"]
    assert rows[0][5:10] == ["6.00", "12.00", "12.00", "40.00", "27.27"]  # 12/30; (12-6)/(30-8)
    assert len(header) == 10 + 19
    with pytest.raises(RobenchError, match="baseline run 'nope'"):
        leaderboard([worse], baseline="nope")


def test_markdown_table_is_aligned_and_render_has_both_tables():
    text = markdown_table(["run", "mCE"], [["a", "1.00"], ["bbb", "22.50"]])
    lines = text.splitlines()
    assert lines[0] == "| run |   mCE |" and lines[1] == "|-----|------:|" and lines[3] == "| bbb | 22.50 |"
    report = render([entry("a", 5.0, lambda i, c, s: 10.0)])
    assert "## Leaderboard" in report and "per severity" in report
    with pytest.raises(RobenchError, match="no evaluated runs"):
        render([])
