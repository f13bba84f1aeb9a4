"""RobustBench export: one model card per evaluated run, in the format of RobustBench's
`model_info/<dataset>/corruptions/<Model_name>.json` files, and the per-cell accuracies in the
layout of its `unaggregated_results.csv` (two header rows: corruption, then severity; one row per
model; accuracies as fractions).

Field names as in RobustBench's own corruption model cards (e.g. Hendrycks2020AugMixWRN.json): link,
name, authors, additional_data, number_forward_passes, dataset, venue, architecture, eps (null for
corruptions), clean_acc, reported, corruptions_acc (accuracies in %, written as strings as there),
and the optional footnote. robench fills in what its run folders know; the paper fields (link, name,
authors, venue) and `reported` are left empty for the user (USER_FIELDS).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from robench.corruptions.protocol import SEVERITIES, STANDARD
from robench.runfolder.files import atomic_write_text, safe_name

USER_FIELDS = ("link", "name", "authors", "venue", "reported")
# RobustBench's corruption leaderboards (its BenchmarkDataset names); others are exported but flagged.
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")
ARCHITECTURES = {"resnet18": "ResNet-18", "wrn-40-2": "WideResNet-40-2", "small-cnn": "small CNN (robench)"}


def model_card(row, train: dict | None = None) -> dict:
    """The card of one evaluation (a row of Report.per_eval): accuracies = 100 - errors."""
    footnote = (f"Trained and evaluated with robench: policy {row['policy']}, seed {row['seed']}; {row['source']} "
                f"corruptions, {int(row['n'])} test images.")
    return {
        "link": "", "name": "", "authors": "",
        "additional_data": False,
        "number_forward_passes": 1,
        "dataset": row["dataset"],
        "venue": "",
        "architecture": ARCHITECTURES.get(row["model"], row["model"]),
        "eps": None,
        "clean_acc": f"{100 - row['clean']:.2f}",
        "reported": "",
        "corruptions_acc": f"{100 - row['mCE']:.2f}",
        "footnote": footnote,
    }


def unaggregated_csv(rows: list[tuple[str, dict]]) -> str:
    """RobustBench's unaggregated_results.csv: header rows of corruption and severity, then one row
    per model of accuracies (fractions) for the 15 standard corruptions x 5 severities."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([""] + [c for c in STANDARD for _ in SEVERITIES])
    writer.writerow([""] + [s for _ in STANDARD for s in SEVERITIES])
    for name, errors in rows:
        writer.writerow([name] + [f"{1 - errors[(c, s)] / 100:.4f}" for c in STANDARD for s in SEVERITIES])
    return buffer.getvalue()


def write_cards(report, folder: Path) -> list[str]:
    """Cards under folder/<dataset>/corruptions/; returns warning lines (runs skipped, sources or
    datasets RobustBench would not accept)."""
    skipped, generated, elsewhere, by_dataset = [], [], set(), {}
    cells = report.cells.set_index(["run", "dataset", "source"])
    for _, row in report.per_eval.iterrows():
        if not (row["mCE"] == row["mCE"] and row["clean"] == row["clean"]):  # NaN: incomplete
            skipped.append(f"{row['run']} ({row['dataset']}, {row['source']})")
            continue
        name = safe_name(row["run"] if row["source"] == "official" else f"{row['run']}_{row['source']}")
        path = Path(folder) / safe_name(row["dataset"]) / "corruptions" / f"{name}.json"
        atomic_write_text(path, json.dumps(model_card(row), indent=2) + "\n")
        mine = cells.loc[(row["run"], row["dataset"], row["source"])]
        errors = {(c, int(s)): float(e) for c, s, e in zip(mine["corruption"], mine["severity"], mine["error"])}
        by_dataset.setdefault(row["dataset"], []).append((name, errors))
        if row["source"] != "official":
            generated.append(row["run"])
        if row["dataset"] not in ROBUSTBENCH_DATASETS:
            elsewhere.add(row["dataset"])
    for dataset, rows in by_dataset.items():
        atomic_write_text(Path(folder) / safe_name(dataset) / "corruptions" / "unaggregated_results.csv",
                          unaggregated_csv(rows))
    warnings = []
    if skipped:
        warnings.append(f"robustbench: no model card for {', '.join(skipped)}: no complete mCE")
    if generated:
        warnings.append(f"robustbench: {', '.join(generated)} were evaluated on generated corruptions; RobustBench "
                        f"lists results on the released C-sets only (robench eval --source official)")
    if elsewhere:
        warnings.append(f"robustbench: {', '.join(sorted(elsewhere))} has no RobustBench corruption leaderboard "
                        f"(only {', '.join(ROBUSTBENCH_DATASETS)} have)")
    return warnings
