"""robench.report.robustbench: RobustBench model cards (the fields of its model_info JSON files, in
its order) and the unaggregated per-cell accuracies."""

import json

from runfolders import STANDARD

from robench.report import leaderboard as R


def test_robustbench_model_cards(two_groups, tmp_path):
    from robench.report.robustbench import write_cards

    rep = R.report([two_groups])
    warnings = write_cards(rep, tmp_path / "rb")
    folder = tmp_path / "rb" / "shapes10" / "corruptions"
    card = json.loads((folder / "augmix-s1_generated.json").read_text())
    # The fields of RobustBench's model_info/<dataset>/corruptions/*.json, in its order.
    assert list(card) == ["link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                          "architecture", "eps", "clean_acc", "reported", "corruptions_acc", "footnote"]
    # augmix-s1: clean 5.0; cell error 19.5 + s + (i % 4): mean over s = 22.5, over i = 0..14 of i % 4 = 21/15.
    assert card["clean_acc"] == "95.00" and card["eps"] is None and card["additional_data"] is False
    assert card["corruptions_acc"] == f"{100 - (22.5 + 21 / 15):.2f}" and card["dataset"] == "shapes10"
    lines = (folder / "unaggregated_results.csv").read_text().splitlines()
    assert lines[0].split(",")[1:6] == ["gaussian_noise"] * 5 and lines[1].split(",")[1:6] == ["1", "2", "3", "4", "5"]
    row = next(line.split(",") for line in lines if line.startswith("augmix-s1_generated,"))
    assert len(row) == 1 + 75 and row[1] == f"{1 - (19.5 + 1) / 100:.4f}" and row[-1] == f"{1 - (19.5 + 5 + 14 % 4) / 100:.4f}"
    assert len(list(folder.glob("*.json"))) == 6  # the unevaluated run has no card
    assert any("generated corruptions" in w for w in warnings) and any("no RobustBench" in w for w in warnings)
    assert STANDARD[-1] == lines[0].split(",")[-1]
