"""robench.report.formats: how a report looks (markdown, LaTeX booktabs, JSON, CSV), the `--out`
suffix check, and markdown tables aligned by column."""

import json

import pytest
from runfolders import three_seeds

from robench.errors import RobenchError
from robench.report import formats as F
from robench.report import leaderboard as R


def test_formats(tmp_path):
    three_seeds(tmp_path, "r18_std", [30.0, 32.0, 34.0])
    rep = R.report([tmp_path])
    md = R.render(rep, "md")
    assert md.startswith("## Leaderboard") and "| r18_std" in md and "32.00 ± 2.00 (3)" in md
    latex = R.render(rep, "latex")
    for piece in (r"\toprule", r"\midrule", r"\bottomrule", r"r18\_std", r"32.00 $\pm$ 2.00 (3)", r"\begin{tabular}"):
        assert piece in latex
    assert "|" not in latex.split(r"\begin{tabular}")[1].split("\n")[0]  # booktabs: no vertical rules
    data = json.loads(R.render(rep, "json"))
    assert data["leaderboard"][0]["mCE"] == pytest.approx(32.0) and data["leaderboard"][0]["mCE std"] == pytest.approx(2.0)
    assert set(data) == {"leaderboard", "corruptions", "severities", "warnings", "notes"}
    csv_text = R.render(rep, "csv")
    assert csv_text.splitlines()[0].startswith("rank,run,runs,model") and ",32.0,2.0,3," in csv_text
    with pytest.raises(RobenchError, match="unknown report format 'xls'"):
        R.render(rep, "xls")
    with pytest.raises(RobenchError, match="--out must end in"):
        R.check_outputs([tmp_path / "board.txt"])


def test_markdown_table_is_aligned():
    text = F.markdown_table(["run", "mCE"], [["a", "1.00"], ["bbb", "22.50 ± 1.00 (3)"]])
    lines = text.splitlines()
    assert lines[0] == "| run |              mCE |" and lines[1] == "|-----|-----------------:|"
    assert lines[3] == "| bbb | 22.50 ± 1.00 (3) |"
