"""Models robench did not train: timm, torchvision, a user factory file, TorchScript and torch.export
files through `robench eval` and `robench.evaluate`, checked against a direct forward pass; the
one-line errors; ensembles; the run-like results folder that `robench report` ranks. (The Python
API itself, robench.evaluate and robench.summarize, is tested in tests/eval/test_api.py.)

Data: the embedded shapes10 test split, first N images; tiny models with seeded random weights.
"""

import json
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import robench
from robench.cli import app
from robench.data import load_split
from robench.runfolder.files import read_eval_csv

N = 64
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: thread hand-offs would dominate
FACTORY = textwrap.dedent("""
    import torch
    from torch import nn

    def build(num_classes=10):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, num_classes))

    def seven():
        return build(7)

    def not_a_model():
        return 3
""")


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_line_error(result, pattern):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robench: error:"), result.stderr
    assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def test_split():
    split = load_split("shapes10", False, limit=N)
    return split.images, split.labels


@pytest.fixture(scope="module")
def factory_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "net.py"
    path.write_text(FACTORY)
    return path


def factory_model():
    torch.manual_seed(0)
    from torch import nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()


@torch.no_grad()
def direct(model, x, labels):
    """(correct, NLL) of `model` on float input x, computed here without robench."""
    logits = model(x).double()
    return int((logits.argmax(1) == labels).sum()), float(torch.nn.functional.cross_entropy(logits, labels))


def clean_row(csv_path):
    return next(r for r in read_eval_csv(csv_path) if r["corruption"] == "clean")


def eval_args(out_dir, model, *extra):
    """`robench eval MODEL` on the first N shapes10 images, cells clean and contrast s1; `extra` flags last."""
    return ["eval", model, "--dataset", "shapes10", "--limit", N, "--corruptions", "contrast", "--severities", "1",
            "--device", "cpu", "--out-dir", out_dir, *extra]


def test_timm_model_with_checkpoint_through_the_cli(test_split, tmp_path):
    timm = pytest.importorskip("timm")
    images, labels = test_split
    torch.manual_seed(1)
    net = timm.create_model("test_resnet", num_classes=10).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "r.pth")
    result = invoke(*eval_args(tmp_path / "results", "timm:test_resnet", "--checkpoint", tmp_path / "r.pth"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "timm-test_resnet"
    row = clean_row(folder / "eval" / "shapes10-generated.csv")
    mean, std = net.pretrained_cfg["mean"], net.pretrained_cfg["std"]  # the model's own normalisation
    x = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    correct, nll = direct(net, x, labels)
    assert int(row["correct"]) == correct and float(row["nll"]) == pytest.approx(nll, abs=1e-5)
    run = json.loads((folder / "run.json").read_text())
    assert run["model"] == "timm:test_resnet" and run["policy"] == "external"
    assert run["parameters"] == sum(p.numel() for p in net.parameters())
    assert run["source"]["kind"] == "library" and run["source"]["checkpoint"].endswith("r.pth")
    assert run["input"]["mean"] == pytest.approx(list(mean)) and run["input"]["input_range"] == "0-1"


def test_plain_module_factory_torchscript_and_export_agree(test_split, factory_file, tmp_path):
    """The same network as an nn.Module (API), a factory file, a TorchScript file and a torch.export
    file: identical cells; and identical to a direct forward on [0, 1] input (no normalisation)."""
    images, labels = test_split
    net = factory_model()
    torch.jit.script(net).save(str(tmp_path / "net.ts"))
    program = torch.export.export(net, (images[:2].float() / 255,),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "net.pt2")
    via_api = robench.evaluate(net, dataset="shapes10", corruptions="contrast", severities="1", limit=N, device="cpu")
    correct, nll = direct(net, images.float() / 255, labels)
    assert int(via_api.correct[0]) == correct and via_api.nll[0] == pytest.approx(nll, abs=1e-5)
    for spec, name in [(f"{factory_file}:build", "net-build"), (tmp_path / "net.ts", "net"),
                       (tmp_path / "net.pt2", "net-export")]:
        result = invoke(*eval_args(tmp_path / "results", spec, "--name", name))
        assert result.exit_code == 0, result.output
        rows = read_eval_csv(tmp_path / "results" / name / "eval" / "shapes10-generated.csv")
        assert [int(r["correct"]) for r in rows] == list(via_api.correct), spec
        assert [float(r["nll"]) for r in rows] == pytest.approx(list(via_api.nll), abs=1e-5), spec


def test_input_range_and_image_size_reach_the_model(factory_file, tmp_path):
    """A factory that records its input: 0-255 scales, --image-size resizes (bilinear, antialias)."""
    seen = tmp_path / "seen.pt"
    spy = tmp_path / "spy.py"
    spy.write_text(textwrap.dedent(f"""
        import torch
        from torch import nn

        class Spy(nn.Module):
            def forward(self, x):
                torch.save(x, {str(seen)!r})
                return torch.zeros(x.shape[0], 10)

        def build():
            return Spy()
    """))
    result = invoke(*eval_args(tmp_path / "results", f"{spy}:build", "--input-range", "0-255", "--image-size", "48",
                               "--corruptions", "none", "--batch-size", "1000"))
    assert result.exit_code == 0, result.output
    x = torch.load(seen)
    images = load_split("shapes10", False, limit=N).images.float()
    expected = torch.nn.functional.interpolate(images / 255, size=(48, 48), mode="bilinear", antialias=True) * 255
    assert x.shape == (N, 3, 48, 48) and torch.allclose(x, expected, atol=1e-3)
    # The results folder rebuilds the model from its run.json, input convention included.
    seen.unlink()
    result = invoke("eval", tmp_path / "results" / "spy-build", "--corruptions", "none", "--limit", N, "--device", "cpu",
                    "--force", "--trust-code")  # its cells are done: --force measures them again
    assert result.exit_code == 0, result.output
    assert torch.allclose(torch.load(seen), expected, atol=1e-3)
    run = json.loads((tmp_path / "results" / "spy-build" / "run.json").read_text())
    assert run["model"] == f"{spy}:build" and run["source"]["options"]["input_range"] == "0-255"


@pytest.mark.parametrize("model, extra, message", [
    ("{factory}:seven", [], "predicts 7 classes but the dataset has 10"),
    ("{tmp}/missing.py:build", [], "does not exist"),
    ("{factory}:nosuch", [], "has no function 'nosuch'"),
    ("{factory}:not_a_model", [], "not a torch.nn.Module"),
    ("{factory}:build", ["--checkpoint", "{tmp}/other.pt"], "missing keys"),
    ("{factory}:build", ["--checkpoint", "{tmp}/nothing.pt"], "does not exist"),
    ("{factory}:build", ["--normalize", "0.5,0.2,0.1"], "--normalize expects MEAN,STD"),
    ("{factory}:build", ["--normalize", "0.5,0"], "std must be positive"),
    ("{factory}:build", ["--input-range", "0-2"], "--input-range must be"),
    ("timm:no_such_net", [], "timm has no model 'no_such_net'"),
    ("torchvision:no_such_net", [], "torchvision has no model"),
    ("small-cnn", [], "needs --checkpoint"),
    ("bogus", [], "unknown model 'bogus'"),
])
def test_user_mistakes_are_one_line_errors_and_write_nothing(factory_file, tmp_path, model, extra, message):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    fill = lambda s: s.format(factory=factory_file, tmp=tmp_path)  # noqa: E731
    result = invoke(*eval_args(tmp_path / "results", fill(model), *[fill(e) for e in extra]))
    one_line_error(result, message)
    assert not (tmp_path / "results").exists()


def test_pretrained_weights_offline_is_one_line(tmp_path):
    pytest.importorskip("timm")
    result = invoke(*eval_args(tmp_path / "results", "timm:test_resnet", "--pretrained"), env={"HF_HUB_OFFLINE": "1"})
    one_line_error(result, "cannot get the pretrained weights of timm:test_resnet")
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """A tiny real-format CIFAR-10 (N test images) and its official-layout C-set (the 15 standard
    corruptions), in a data dir: `--source official` reads it in a blink, so every standard cell fits."""
    import tarfile

    import formats

    from robench.corruptions import STANDARD

    root = tmp_path_factory.mktemp("cifar-data")
    tarball = formats.cifar_tarball(tmp_path_factory.mktemp("tarball"), n_train=10, n_test=N, seed=3)
    with tarfile.open(tarball) as tar:
        tar.extractall(root, filter="data")
    images, labels = formats.cifar_test_split(tarball)
    formats.official_cset(root / "CIFAR-10-C", images, labels, corruptions=STANDARD)
    return root, torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long()


def make_run(folder, seed):
    """A run folder in the format robench train writes (config.yaml, checkpoint.pt, run.json), with a
    seeded random small-cnn."""
    import yaml

    from robench.models import build_model

    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    net = build_model("small-cnn", 10).eval()
    (folder / "config.yaml").write_text(yaml.safe_dump({"dataset": "cifar10", "model": "small-cnn", "seed": seed}))
    torch.save({"model": "small-cnn", "num_classes": 10, "classes": [], "dataset": "cifar10", "epoch": 1,
                "state_dict": net.state_dict()}, folder / "checkpoint.pt")
    (folder / "run.json").write_text(json.dumps({"name": folder.name, "model": "small-cnn", "policy": "standard",
                                                 "dataset": "cifar10"}))
    return folder


def test_ensemble_of_two_runs_is_one_model_averaging_softmax(cifar, tmp_path):
    from robench.runfolder.checkpoints import load_model

    root, images, labels = cifar
    a, b = make_run(tmp_path / "runs" / "a", 0), make_run(tmp_path / "runs" / "b", 1)
    args = ["--corruptions", "fog,contrast", "--severities", "2,5", "--device", "cpu", "--data-dir", root]
    for run in (a, b):
        assert invoke("eval", run, *args).exit_code == 0
    result = invoke("eval", a, b, "--ensemble", "pair", "--out-dir", tmp_path, *args)
    assert result.exit_code == 0, result.output
    rows = {(r["corruption"], r["severity"]): r for r in read_eval_csv(tmp_path / "pair" / "eval" / "cifar10-official.csv")}
    members = [{(r["corruption"], r["severity"]): r for r in read_eval_csv(run / "eval" / "cifar10-official.csv")}
               for run in (a, b)]
    assert len(rows) == 5
    for cell, row in rows.items():
        errors = [float(m[cell]["error"]) for m in members]
        assert float(row["error"]) <= max(errors), cell  # between its members or better
        # NLL of the mean softmax is at most the members' mean NLL (Jensen): a real average of p.
        assert float(row["nll"]) <= sum(float(m[cell]["nll"]) for m in members) / 2 + 1e-9, cell
    nets = [load_model(run, torch.device("cpu"))[0] for run in (a, b)]
    with torch.no_grad():
        p = torch.stack([net(images).softmax(1) for net in nets]).mean(0)
    assert int(rows[("clean", "0")]["correct"]) == int((p.argmax(1) == labels).sum())
    nll = float(-p.double().gather(1, labels[:, None]).log().mean())  # of the mean probability, not mean logits
    assert float(rows[("clean", "0")]["nll"]) == pytest.approx(nll, abs=1e-5)
    run = json.loads((tmp_path / "pair" / "run.json").read_text())
    assert run["policy"] == "ensemble" and [m["kind"] for m in run["source"]["members"]] == ["run", "run"]
    one_line_error(invoke("eval", a, b, *args), "--ensemble NAME")


def test_report_ranks_an_external_model_beside_a_trained_run(cifar, factory_file, tmp_path):
    """Every standard corruption x severity, so both rows have an mCE and are ranked by it."""
    root = cifar[0]
    results = tmp_path / "results"
    trained = make_run(results / "trained", 0)
    args = ["--corruptions", "standard", "--device", "cpu", "--data-dir", root]
    assert invoke("eval", trained, *args).exit_code == 0
    result = invoke("eval", f"{factory_file}:build", "--name", "mine", "--out-dir", results, *args)
    assert result.exit_code == 0, result.output
    report = invoke("report", results, "--format", "json")
    assert report.exit_code == 0, report.output
    rows = json.loads(report.stdout)["leaderboard"]
    mce = {r["run"]: r["mCE"] for r in rows}
    assert set(mce) == {"trained", "mine"} and mce["trained"] != mce["mine"]
    assert [r["run"] for r in rows] == sorted(mce, key=mce.get)  # ranked by mCE, external or not
    assert [r["rank"] for r in rows] == [1, 2]
    assert {r["run"]: r["policy"] for r in rows}["mine"] == "external"
    from robench.report.tidy import load

    runs = load([results]).runs.set_index("run")
    assert runs.loc["mine", "status"] == "external" and runs.loc["trained", "status"] == "trained"
    assert runs.loc["mine", "origin"]["kind"] == "factory"


def test_save_predictions_writes_each_cells_predictions_and_confidences(factory_file, test_split, tmp_path):
    images, labels = test_split
    result = invoke(*eval_args(tmp_path, f"{factory_file}:build", "--save-predictions"))
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "net-build" / "eval" / "shapes10-generated-predictions.npz") as z:
        assert set(z.files) == {"labels", "seed", "clean_s0_prediction", "clean_s0_confidence",
                                "contrast_s1_prediction", "contrast_s1_confidence"}
        with torch.no_grad():
            p = factory_model()(images.float() / 255).softmax(1)
        assert np.array_equal(z["clean_s0_prediction"], p.argmax(1).numpy())
        assert np.allclose(z["clean_s0_confidence"], p.max(1).values.numpy(), atol=1e-6)
        assert np.array_equal(z["labels"], labels.numpy())
    row = clean_row(tmp_path / "net-build" / "eval" / "shapes10-generated.csv")
    assert int(row["correct"]) == int((p.argmax(1) == labels).sum())


def test_train_accepts_library_models_at_another_image_size(tmp_path):
    """`robench train --model timm:<name> --image-size S`: the run's model resizes on the device, and
    the checkpoint rebuilds it (image size included) for eval."""
    pytest.importorskip("timm")
    result = invoke("train", "--dataset", "shapes10", "--model", "timm:test_resnet", "--image-size", "40", "--epochs", "1",
                    "--batch-size", "32", "--train-limit", "64", "--test-limit", "32", "--out-dir", tmp_path,
                    "--name", "t", "--device", "cpu")
    assert result.exit_code == 0, result.output
    checkpoint = torch.load(tmp_path / "t" / "checkpoint.pt", weights_only=True)
    assert checkpoint["model"] == "timm:test_resnet" and checkpoint["image_size"] == 40
    from robench.runfolder.checkpoints import load_model

    net = load_model(tmp_path / "t", torch.device("cpu"))[0]
    seen = []
    net.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    with torch.no_grad():
        net(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert seen == [(2, 3, 40, 40)]
    assert invoke("eval", tmp_path / "t", "--corruptions", "none", "--device", "cpu").exit_code == 0
    one_line_error(invoke("train", "--dataset", "shapes10", "--model", "small-cnn", "--pretrained", "--epochs", "1",
                          "--out-dir", tmp_path, "--name", "p", "--device", "cpu"), "--pretrained needs")
    assert not (tmp_path / "p").exists()
