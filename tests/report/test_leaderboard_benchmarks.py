"""robench.report.leaderboard with the benchmark columns: one table per (protocol, subset), ImageNet-C's
AlexNet-normalised mCE and relative mCE against a hand computation, the C-bar error and the -P means
beside mCE, and eval CSVs without the columns read as CIFAR-10-C over all images."""

import csv
import io
import json
import math

import pytest
from benchfiles import CBAR, P_PERTURBATIONS, STANDARD, c_eval, cbar_eval, p_eval
from runfolders import constant, make_run

from robench.report import leaderboard as R
from robench.report import views as V
from robench.report.baselines import ALEXNET_IMAGENET_C
from robench.report.html import page


def row_of(rep, run, table=None):
    rows = rep.leaderboard[(rep.leaderboard["run"] == run)
                           & ((rep.leaderboard["table"] == table) if table else True)]
    assert len(rows) == 1, f"{run}: {len(rows)} rows"
    return rows.iloc[0]


def shown(rep, view, run, column):
    header, rows = V.display_tables(rep)[view]
    row = next(r for r in rows if r[header.index("run")] == run)
    return row[header.index(column)]


def imagenet_error(i, c, s):
    return 20.0 + 2 * i + 3 * s + (i % 3) * s


def hand_alexnet(errors, clean):
    """CE_c = sum_s E / sum_s E(AlexNet), relative likewise minus clean errors; mean over the 15, x 100."""
    normalised = relative = 0.0
    for i, c in enumerate(STANDARD):
        alex = [100 * a for a in ALEXNET_IMAGENET_C[c]]
        ours = [errors(i, c, s) for s in range(1, 6)]
        normalised += sum(ours) / sum(alex)
        relative += sum(e - clean for e in ours) / sum(a - 43.45 for a in alex)
    return 100 * normalised / 15, 100 * relative / 15


def test_a_cifar_run_and_an_imagenet_c_run_get_separate_tables(tmp_path):
    make_run(tmp_path, "cifar", errors=constant(20.0), dataset="cifar10", clean=5.0)
    make_run(tmp_path, "r50", errors=None, dataset="imagenet", model="resnet50", lr=0.1)
    c_eval(tmp_path / "r50", imagenet_error, clean=24.0)
    rep = R.report([tmp_path])
    assert rep.tables == ["cifar10-c|all", "imagenet-c|all"]
    cifar, r50 = row_of(rep, "cifar"), row_of(rep, "r50")
    assert cifar["rank"] == 1 and r50["rank"] == 1  # never ranked together
    normalised, relative = hand_alexnet(imagenet_error, 24.0)
    assert r50["mCE (AlexNet)"] == pytest.approx(normalised, rel=1e-9)
    assert r50["rel. mCE (AlexNet)"] == pytest.approx(relative, rel=1e-9)
    unnormalised = sum(imagenet_error(i, c, s) for i, c in enumerate(STANDARD) for s in range(1, 6)) / 75
    assert r50["mCE"] == pytest.approx(unnormalised)
    assert math.isnan(cifar.get("mCE (AlexNet)", math.nan))
    views = V.display_tables(rep)
    assert list(views)[:2] == ["leaderboard: cifar10-c", "leaderboard: imagenet-c"]
    header, _ = views["leaderboard: imagenet-c"]
    assert header[header.index("clean"):header.index("clean") + 5] == ["clean", "mean error", "mCE (AlexNet)",
                                                                        "rel. mCE (AlexNet)", "extra"]
    assert "mCE (AlexNet)" not in views["leaderboard: cifar10-c"][0] and "mCE" in views["leaderboard: cifar10-c"][0]
    assert shown(rep, "leaderboard: imagenet-c", "r50", "mCE (AlexNet)") == f"{normalised:.2f}"
    assert shown(rep, "leaderboard: imagenet-c", "r50", "mean error") == f"{unnormalised:.2f}"
    md = R.render(rep, "md")
    assert "## Leaderboard — cifar10-c\n" in md and "## Leaderboard — imagenet-c\n" in md
    assert md.index("## Leaderboard — imagenet-c") < md.index("Errors in %.")  # notes after the last board
    assert "One table per corruption protocol" in md and "mCE (AlexNet)" in md
    # CSV: the table in columns; the ImageNet-C row's unnormalised mean is 'mean error', its mCE column empty.
    rows = {r["run"]: r for r in csv.DictReader(io.StringIO(R.render(rep, "csv")))}
    assert rows["r50"]["protocol"] == "imagenet-c" and rows["cifar"]["protocol"] == "cifar10-c"
    assert rows["r50"]["mCE"] == "" and float(rows["r50"]["mean error"]) == pytest.approx(unnormalised)
    assert float(rows["cifar"]["mCE"]) == pytest.approx(20.0) and rows["cifar"]["mean error"] == ""
    assert float(rows["r50"]["mCE (AlexNet)"]) == pytest.approx(normalised)
    data = json.loads(R.render(rep, "json"))
    assert {r["run"]: r["protocol"] for r in data["leaderboard"]} == {"cifar": "cifar10-c", "r50": "imagenet-c"}
    html = page(rep, figures={})
    assert html.count('<table class="sortable">') == 6 and "Leaderboard — imagenet-c" in html


def test_subsets_and_protocols_are_never_ranked_together(tmp_path):
    for name, subset, level in (("full", "all", 30.0), ("five-k", "robustbench-5k", 10.0)):
        make_run(tmp_path, name, errors=None, dataset="imagenet", lr=level)
        c_eval(tmp_path / name, constant(level), clean=20.0, subset=subset)
    make_run(tmp_path, "tiny", errors=None, dataset="tiny-imagenet", lr=0.5)
    c_eval(tmp_path / "tiny", constant(40.0), clean=30.0, dataset="tiny-imagenet", protocol="tiny-imagenet-c")
    rep = R.report([tmp_path])
    assert rep.tables == ["imagenet-c|all", "imagenet-c|robustbench-5k", "tiny-imagenet-c|all"]
    assert list(rep.leaderboard["rank"]) == [1, 1, 1] and rep.warnings == []
    assert "leaderboard: imagenet-c, subset robustbench-5k" in V.display_tables(rep)
    # Tiny-ImageNet-C: the unnormalised mean error, called mCE as in its papers; no AlexNet columns.
    header, _ = V.display_tables(rep)["leaderboard: tiny-imagenet-c"]
    assert "mCE" in header and "mCE (AlexNet)" not in header and "Tiny-ImageNet-C has no published" in V.notes(rep)
    assert row_of(rep, "tiny")["mCE"] == pytest.approx(40.0)


def test_imagenet_c_rows_sort_by_alexnet_mce(tmp_path):
    # Run a has the lower unnormalised mean (31 vs 31.2); run b the lower AlexNet-normalised mCE: it gains
    # its errors on brightness, where AlexNet's error (56 %) is lowest, so each point weighs most there.
    def a_err(i, c, s):
        return 45.0 if c == "brightness" else 30.0

    def b_err(i, c, s):
        return 20.0 if c == "brightness" else 32.0

    for name, errors in (("a", a_err), ("b", b_err)):
        make_run(tmp_path, name, errors=None, dataset="imagenet", lr=0.1 if name == "a" else 0.2)
        c_eval(tmp_path / name, errors, clean=25.0)
    rep = R.report([tmp_path])
    a, b = row_of(rep, "a"), row_of(rep, "b")
    assert a["mCE"] < b["mCE"] and b["mCE (AlexNet)"] < a["mCE (AlexNet)"]
    assert list(rep.leaderboard["run"]) == ["b", "a"] and list(rep.leaderboard["rank"]) == [1, 2]


def cbar_error(i, c, s):
    return 10.0 + i + 2 * s


def test_cbar_error_and_p_means_beside_mce(tmp_path):
    make_run(tmp_path, "both", errors=constant(20.0), dataset="cifar10")
    cbar_eval(tmp_path / "both", cbar_error, clean=5.0)
    p_eval(tmp_path / "both", flip=lambda i, p: 0.01 * (i + 1), top5=lambda i, p: 0.002 * i)
    make_run(tmp_path, "partial", errors=constant(25.0), dataset="cifar10", lr=0.1)
    cbar_eval(tmp_path / "partial", cbar_error, clean=5.0, corruptions=CBAR[:9])
    p_eval(tmp_path / "partial", flip=lambda i, p: 0.05, top5=lambda i, p: 0.05, perturbations=P_PERTURBATIONS[:8])
    make_run(tmp_path, "plain", errors=constant(30.0), dataset="cifar10", lr=0.2)
    rep = R.report([tmp_path])
    assert rep.tables == ["cifar10-c|all"] and rep.others == ["C-bar error", "mFP", "mT5D"]
    both = row_of(rep, "both")
    assert both["C-bar error"] == pytest.approx(10 + 4.5 + 6)  # mean over i = 0..9 and s = 1..5
    assert both["mFP"] == pytest.approx(100 * 0.01 * 5.5) and both["mT5D"] == pytest.approx(0.002 * 4.5)
    assert both["mCE"] == pytest.approx(20.0) and both["clean"] == pytest.approx(5.0)
    assert shown(rep, "leaderboard", "both", "C-bar error") == "20.50" and shown(rep, "leaderboard", "both", "mFP") == "5.50"
    assert shown(rep, "leaderboard", "partial", "C-bar error") == "incomplete (45/50)"
    assert shown(rep, "leaderboard", "partial", "mT5D") == "incomplete (8/10)"
    assert shown(rep, "leaderboard", "plain", "C-bar error") == "-"
    assert "C-bar error: mean over the 10" in V.notes(rep)
    board = next(csv.DictReader(io.StringIO(R.render(rep, "csv"))))
    assert "C-bar error" in board and "mFP" in board


def test_a_run_with_cbar_alone_is_a_row_of_its_own_table(tmp_path):
    make_run(tmp_path, "c-only", errors=constant(20.0), dataset="cifar10")
    make_run(tmp_path, "cbar-only", errors=None, dataset="cifar10", lr=0.1)
    cbar_eval(tmp_path / "cbar-only", cbar_error, clean=6.0)
    rep = R.report([tmp_path])
    row = row_of(rep, "cbar-only")
    assert row["table"] == "c-bar|all" and row["C-bar error"] == pytest.approx(20.5) and row["clean"] == 6.0
    assert row["status"] == ""  # no -C evaluation: nothing incomplete


def test_csvs_without_benchmark_columns_read_as_cifar10_c(tmp_path):
    make_run(tmp_path, "old", errors=constant(20.0))
    results = R.load([tmp_path])
    assert "benchmark" not in results.cells.columns  # the tidy table of old files is what it was
    assert R.with_benchmark(results.cells)[["benchmark", "protocol", "storage", "subset"]].drop_duplicates() \
        .values.tolist() == [["c", "cifar10-c", "none", "all"]]
    c_eval(tmp_path / "old", constant(20.0), clean=5.0, dataset="shapes10", source="official", protocol="cifar10-c",
           storage="none", name="shapes10-official.csv")
    cells = R.load([tmp_path]).cells
    assert set(cells["benchmark"]) == {"c"} and set(cells["protocol"]) == {"cifar10-c"}
