"""The bad-input catalogue: what a new user gets wrong, through the CLI.

Every case must end with exit code 2, exactly one line on stderr ("robench: error: ..." naming the
problem), no traceback, and the files of the world (results folder, run folder, data dir, inputs)
exactly as they were: nothing created, changed or deleted. Most cases run in-process through Typer's
CliRunner and robench's own entry point `main` (so click's usage errors go through the same path as
in a shell); a few run as real subprocesses.
"""

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import formats
import numpy as np
import pytest
import torch
import yaml
from locations import ROOT, SHARED
from typer.testing import CliRunner

from robench.cli import app, main
from robench.models import build_model

N = 40  # test images of the tiny CIFAR-10


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A world to copy for each case: data/ (a tiny extracted CIFAR-10), results/r (a finished run with
    an evaluation), inputs/ (files a user might pass)."""
    world = tmp_path_factory.mktemp("world")
    tarball = formats.cifar_tarball(tmp_path_factory.mktemp("tarball"), n_train=10, n_test=N, seed=3)
    with tarfile.open(tarball) as tar:
        tar.extractall(world / "data", filter="data")
    run = world / "results" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"dataset": "cifar10", "model": "small-cnn", "seed": 0}))
    (run / "run.json").write_text('{"name": "r", "model": "small-cnn", "policy": "standard", "dataset": "cifar10"}\n')
    torch.manual_seed(0)
    checkpoint = {"model": "small-cnn", "num_classes": 10, "classes": [str(k) for k in range(10)], "dataset": "cifar10",
                  "epoch": 1, "state_dict": build_model("small-cnn", 10).state_dict()}
    torch.save(checkpoint, run / "checkpoint.pt")
    result = CliRunner().invoke(app, ["eval", str(run), "--corruptions", "contrast", "--severities", "1", "--source",
                                      "generated", "--device", "cpu", "--data-dir", str(world / "data")])
    assert result.exit_code == 0, result.output
    inputs = world / "inputs"
    inputs.mkdir()
    (inputs / "malformed.yaml").write_text("epochs: [1, 2\nmodel: small-cnn\n")
    (inputs / "unknown-key.yaml").write_text("epochs: 2\nlearning_rate: 0.1\n")
    (inputs / "wrong-type.yaml").write_text("epochs: many\n")
    (inputs / "a-list.yaml").write_text("- epochs\n- 2\n")
    (inputs / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (inputs / "a-file").write_text("not a folder\n")
    torch.save({**checkpoint, "model": "wrn-40-2"}, inputs / "other-architecture.pt")
    torch.save({**checkpoint, "num_classes": 100, "state_dict": build_model("small-cnn", 100).state_dict()},
               inputs / "other-classes.pt")
    (inputs / "truncated.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:2000])
    return world


@pytest.fixture
def world(base, tmp_path):
    return Path(shutil.copytree(base, tmp_path / "world", symlinks=True))


def with_checkpoint(name):
    def setup(w):
        shutil.copy(w / "inputs" / name, w / "results" / "r" / "checkpoint.pt")
    return setup


def with_eval_csv(content: bytes):
    def setup(w):
        (w / "results" / "r" / "eval" / "cifar10-generated.csv").write_bytes(content)
    return setup


def with_cset(corrupt):
    """An official-layout C-set of the test split in inputs/C, then `corrupt(folder)` damages it."""
    def setup(w):
        from robench.data import load_split
        from robench.data.download import set_data_dir

        set_data_dir(w / "data")
        test = load_split("cifar10", False)
        set_data_dir(None)
        folder = w / "inputs" / "C"
        formats.official_cset(folder, np.zeros((N, 32, 32, 3), np.uint8), test.labels.numpy(), corruptions=("contrast",))
        corrupt(folder)
    return setup


def truncate(path_name):
    def damage(folder):
        data = (folder / path_name).read_bytes()
        (folder / path_name).write_bytes(data[: len(data) // 2])
    return damage


def reshape(folder):
    np.save(folder / "contrast.npy", np.zeros((5 * N, 32, 32), np.uint8))


def wrong_checksum(w):
    """A CIFAR-10 tarball placed by hand in an empty data dir, but not the released one."""
    (w / "inputs" / "data2").mkdir()
    formats.cifar_tarball(w / "inputs" / "data2", n_train=4, n_test=4)


EVIL = """
from pathlib import Path
Path(__file__).with_name("marker").write_text("imported")  # importing this file runs code


def build(num_classes=10):
    Path(__file__).with_name("marker").write_text("called")
    raise SystemExit("the factory ran")
"""


def recorded(*specs):
    """results/r becomes the results folder of a model robench did not train whose run.json records
    `specs` (an ensemble when several; none: a damaged source); inputs/evil.py writes inputs/marker
    when imported. Evaluating the folder must not import it."""
    def setup(w):
        run = w / "results" / "r"
        (run / "config.yaml").unlink()
        (run / "checkpoint.pt").rename(w / "inputs" / "checkpoint.pt")
        (w / "inputs" / "evil.py").write_text(EVIL)
        (w / "inputs" / "evil.ts").write_bytes(b"PK")  # never opened
        members = [{"kind": "factory", "spec": fill([s], w)[0], "options": {}} for s in specs]
        source = {"kind": "ensemble", "members": members} if len(members) > 1 else (members or [[]])[0]
        if isinstance(source, dict):
            source["options"] = {"checkpoint": None, "pretrained": False, "input_range": None, "normalize": None,
                                 "image_size": None}
        (run / "run.json").write_text(json.dumps({"name": "r", "model": "mine", "policy": "external",
                                                  "dataset": "cifar10", "source": source}))
    return setup


FACTORIES = """
def raises():
    raise ValueError("width must be even")


def huge():  # what a GPU without room says
    raise RuntimeError("CUDA out of memory. Tried to allocate 80.00 GiB (GPU 0; 79.10 GiB total capacity)")


def needs(width):
    pass
"""


def with_factory(w):
    (w / "inputs" / "net.py").write_text(FACTORIES)
    (w / "inputs" / "broken.py").write_text("import no_such_module\n")


def grid(slurm: dict, evaluation: dict | None = None):
    """inputs/grid.yaml: one tiny run into results/grid, with these #SBATCH options (and eval options)."""
    def setup(w):
        (w / "inputs" / "grid.yaml").write_text(yaml.safe_dump({
            "out_dir": str(w / "results" / "grid"), "set": {"dataset": "cifar10", "model": "small-cnn", "epochs": 1},
            "slurm": slurm, "eval": evaluation or {}}))
    return setup


TRAIN = ["train", "--dataset", "cifar10", "--model", "small-cnn", "--epochs", "1", "--device", "cpu",
         "--out-dir", "{results}", "--data-dir", "{data}"]
CONFIGURED = ["train", "--out-dir", "{results}", "--data-dir", "{data}", "--config"]  # the rest from the YAML
EVAL = ["eval", "{run}", "--corruptions", "contrast", "--severities", "1", "--device", "cpu", "--data-dir", "{data}"]
# A model robench did not train: small-cnn's state dict from the run's checkpoint, results to {results}/<name>.
EXTERNAL = ["eval", "small-cnn", "--checkpoint", "{run}/checkpoint.pt", "--out-dir", "{results}", "--corruptions",
            "contrast", "--severities", "1", "--device", "cpu", "--data-dir", "{data}"]
GOOD_ROWS = b"corruption,severity,n,correct,error,dataset,source,seed,frost_textures\nclean,0,40,4,90.0000,cifar10,generated,0,\n"


# --- the benchmarks, protocols and image folders (the surfaces of --benchmark, --protocol, folder:) ---

def image_tree(name, size=(250, 240), damage=None, layout=("a/x.jpg", "a/y.jpg", "b/z.jpg")):
    """inputs/<name>: real JPEGs in class folders (224 px once loaded); `damage(folder)` spoils it."""
    def setup(w):
        import imagetrees

        for k, file in enumerate(layout):
            imagetrees.write_jpeg(w / "inputs" / name / file, k, size)
        if damage:
            damage(w / "inputs" / name)
    return setup


def cut_jpeg(folder):
    data = (folder / "j" / "z.jpg").read_bytes()
    (folder / "j" / "z.jpg").write_bytes(data[: len(data) // 3])


def tiny_imagenet_64(w):
    import imagetrees

    imagetrees.tiny_imagenet(w / "data" / "tiny-imagenet-200", imagetrees.wnids(200), 4)


def with_p_csv(content: bytes):
    def setup(w):
        (w / "results" / "r" / "eval" / "cifar10-p-generated.csv").write_bytes(content)
    return setup


def wrong_pset(w):
    (w / "inputs" / "P").mkdir()
    np.save(w / "inputs" / "P" / "gaussian_noise.npy", np.zeros((N, 31, 32, 32), np.uint8))  # no colour axis


P_ROWS = (b"corruption,severity,n,dataset,source,seed,benchmark,protocol,storage,subset,flip_prob,top5_dist,zipf_dist,"
          b"frames\nbrightness,0,40,cifar10,generated,0,p,cifar10-p,none,all,0.010000,0.020000,0.000100,31\n")
EVAL_P = ["eval", "{run}", "--benchmark", "p", "--device", "cpu", "--data-dir", "{data}"]
GENERATE = ["data", "generate", "--out", "{results}/G", "--device", "cpu", "--data-dir", "{data}"]

# (id, argv with {placeholders}, a setup of the world or None, what the one line must say)
CASES = [
    # unknown names, one per registry
    ("unknown-dataset", ["train", "--dataset", "cifar11", "--out-dir", "{results}"], None, "unknown dataset 'cifar11'"),
    ("unknown-model", TRAIN + ["--model", "resnet9000"], None, "unknown model 'resnet9000'"),
    ("unknown-policy", TRAIN + ["--policy", "magic"], None, "unknown policy 'magic'"),
    ("unknown-mixer", TRAIN + ["--mix", "blend"], None, "unknown mixer 'blend'"),
    ("unknown-optimizer", TRAIN + ["--optimizer", "adamx"], None, "unknown optimizer 'adamx'"),
    ("unknown-corruption", EVAL[:2] + ["--corruptions", "rain"], None, "unknown corruption 'rain'"),
    ("unknown-policy-param", TRAIN + ["--policy", "randaugment", "--policy-param", "strength=3"], None, "strength"),
    ("unknown-list", ["list", "nonsense"], None, "unknown list 'nonsense'"),
    ("unknown-download", ["data", "download", "imagenet"], None, "unknown download 'imagenet'"),
    ("unknown-source", EVAL + ["--source", "somewhere"], None, "unknown --source 'somewhere'"),
    # ranges
    ("severity-0", EVAL[:2] + ["--severities", "0"], None, "bad --severities '0'"),
    ("severity-6", EVAL[:2] + ["--severities", "6"], None, "bad --severities '6'"),
    ("epochs-0", TRAIN + ["--epochs", "0"], None, "--epochs must be at least 1"),
    ("batch-size-0", EVAL + ["--batch-size", "0"], None, "--batch-size must be at least 1"),
    ("label-smoothing-1.5", TRAIN + ["--label-smoothing", "1.5"], None, "--label-smoothing must be in [0, 1)"),
    ("limit-0", ["data", "generate", "--dataset", "cifar10", "--out", "{results}/C", "--data-dir", "{data}",
                 "--limit", "0"], None, "--limit must be at least 1"),
    ("device-tpu-eval", EVAL + ["--device", "tpu"], None, "--device must be auto, cpu, cuda or cuda:N"),
    ("device-tpu-train", TRAIN + ["--device", "tpu"], None, "--device must be auto, cpu, cuda or cuda:N"),
    ("device-tpu-generate", ["data", "generate", "--dataset", "cifar10", "--out", "{results}/C", "--device", "tpu",
                             "--data-dir", "{data}"], None, "--device must be auto, cpu, cuda or cuda:N"),
    ("jsd-without-augmix", TRAIN + ["--jsd"], None, "--jsd needs --policy augmix"),
    # config files
    ("config-malformed-yaml", CONFIGURED + ["{inputs}/malformed.yaml"], None, "is not valid YAML at line"),
    ("config-unknown-key", CONFIGURED + ["{inputs}/unknown-key.yaml"], None, "unknown config key(s): learning_rate"),
    ("config-wrong-type", CONFIGURED + ["{inputs}/wrong-type.yaml"], None, "config key 'epochs' must be int"),
    ("config-a-list", CONFIGURED + ["{inputs}/a-list.yaml"], None, "must be a mapping"),
    ("config-binary", CONFIGURED + ["{inputs}/binary.yaml"], None, "is not text"),
    ("config-a-folder", CONFIGURED + ["{inputs}"], None, "is a folder"),
    ("config-missing", CONFIGURED + ["{inputs}/nope.yaml"], None, "does not exist"),
    ("usage-not-a-number", TRAIN + ["--epochs", "many"], None, "Invalid value for '--epochs'"),
    ("usage-unknown-flag", TRAIN + ["--epoch", "3"], None, "No such option: --epoch"),
    # data
    ("official-missing", EVAL + ["--source", "official", "--c-dir", "{inputs}/no-such-C"], None, "official"),
    ("npy-truncated", EVAL + ["--source", "official", "--c-dir", "{inputs}/C"], with_cset(truncate("contrast.npy")),
     "is truncated or not .npy"),
    ("npy-wrong-shape", EVAL + ["--source", "official", "--c-dir", "{inputs}/C"], with_cset(reshape), "expected uint8"),
    ("archive-wrong-checksum", ["train", "--dataset", "cifar10", "--out-dir", "{results}", "--data-dir", "{inputs}/data2"],
     wrong_checksum, "checksum mismatch"),
    ("official-for-a-dataset-without-release", EVAL + ["--source", "official", "--dataset", "fashion-mnist"], None,
     "fashion-mnist has no official corruption release"),
    # checkpoints and run folders
    ("not-a-run-folder", ["eval", "{inputs}"], None, "is not a run folder"),
    ("checkpoint-corrupt", EVAL, with_checkpoint("truncated.pt"), "cannot load checkpoint"),
    ("checkpoint-other-architecture", EVAL, with_checkpoint("other-architecture.pt"), "does not fit model wrn-40-2"),
    ("checkpoint-other-class-count", EVAL, with_checkpoint("other-classes.pt"), "predicts 100 classes but the dataset has 10"),
    ("teacher-missing", TRAIN + ["--teacher", "{inputs}/no-run"], None, "no checkpoint at"),
    ("run-exists", TRAIN + ["--name", "r"], None, "already holds a run"),
    ("name-escapes", TRAIN + ["--name", "../escape"], None, "run name '../escape' must be a plain folder name"),
    ("name-absolute", TRAIN + ["--name", "{inputs}/abs"], None, "must be a plain folder name"),
    # where results go
    ("out-dir-under-a-file", TRAIN + ["--out-dir", "{inputs}/a-file/results"], None, "Not a directory"),
    ("eval-folder-is-a-file", EVAL, lambda w: (shutil.rmtree(w / "results/r/eval"),
                                               (w / "results/r/eval").write_text("")), "cannot write"),
    ("generate-out-is-a-file", ["data", "generate", "--dataset", "cifar10", "--out", "{inputs}/a-file",
                                "--data-dir", "{data}", "--corruptions", "contrast"], None, "is a file"),
    ("report-out-under-a-file", ["report", "{results}", "--out", "{inputs}/a-file/board.md"], None, "cannot write"),
    ("report-out-suffix", ["report", "{results}", "--out", "{results}/board.txt"], None, "--out must end in .md, .html, .tex, .json"),
    ("report-missing-folder", ["report", "{inputs}/nowhere"], None, "does not exist"),
    # damaged eval CSVs
    ("csv-non-number", ["report", "{results}"], with_eval_csv(GOOD_ROWS.replace(b"90.0000", b"ninety")), "non-number"),
    ("csv-cut-row", ["report", "{results}"], with_eval_csv(GOOD_ROWS[:-20]), "does not have the header's"),
    ("csv-random-bytes", ["report", "{results}"], with_eval_csv(bytes(range(128, 256)) * 8), "not a readable CSV"),
    ("csv-missing-columns", ["report", "{results}"], with_eval_csv(b"corruption,severity\nclean,0\n"), "no column n"),
    ("csv-damaged-before-eval", EVAL, with_eval_csv(b"corruption,severity\nclean,0\n"), "no column n"),
    # every name that becomes a folder is checked as train's --name is (issue #22)
    ("eval-name-escapes", EXTERNAL + ["--name", ".."], None, "run name '..' must be a plain folder name"),
    ("ensemble-escapes", EVAL + ["{run}", "--ensemble", "..", "--out-dir", "{results}"], None,
     "run name '..' must be a plain folder name"),
    ("ensemble-with-a-slash", EVAL + ["{run}", "--ensemble", "a/b", "--out-dir", "{results}"], None,
     "run name 'a/b' must be a plain folder name"),
    ("train-name-empty", TRAIN + ["--name", ""], None, "run name '' must be a plain folder name"),
    ("eval-name-empty", EXTERNAL + ["--name", ""], None, "run name '' must be a plain folder name"),
    # a results folder someone sent runs no code by being evaluated (issue #22)
    ("folder-records-a-factory", EVAL, recorded("{inputs}/evil.py:build"), "pass --trust-code if you trust"),
    ("folder-records-an-ensemble-with-a-factory", EVAL, recorded("{inputs}/evil.py:build", "{run}"),
     "pass --trust-code if you trust"),
    ("folder-records-torchscript", EVAL, recorded("{inputs}/evil.ts"), "records code"),
    ("folder-source-damaged", EVAL, recorded(), "is damaged"),
    # every value written into a generated script stays on its line (issue #22)
    ("slurm-value-with-a-newline", ["sweep", "{inputs}/grid.yaml", "--slurm"], grid({"partition": "gpu\ntouch pwned"}),
     "#SBATCH option partition 'gpu\\ntouch pwned' holds a newline"),
    ("sbatch-flag-with-a-newline", ["sweep", "{inputs}/grid.yaml", "--slurm", "--sbatch", 'time="1:00\\ntouch pwned"'],
     grid({}), "holds a newline"),
    # errors in the user's own code, and damaged files torch reads: one line, no traceback (issue #22)
    ("factory-raises", EXTERNAL[:1] + ["{inputs}/net.py:raises"] + EXTERNAL[4:], with_factory,
     "net.py:raises() raised ValueError: width must be even"),
    ("factory-out-of-memory", EXTERNAL[:1] + ["{inputs}/net.py:huge"] + EXTERNAL[4:], with_factory,
     "net.py:huge() raised RuntimeError: CUDA out of memory. Tried to allocate 80.00 GiB"),
    ("factory-needs-an-argument", EXTERNAL[:1] + ["{inputs}/net.py:needs"] + EXTERNAL[4:], with_factory,
     "net.py:needs() raised TypeError: needs() missing 1 required positional argument: 'width'"),
    ("factory-import-fails", EXTERNAL[:1] + ["{inputs}/broken.py:build"] + EXTERNAL[4:], with_factory,
     "broken.py raised ModuleNotFoundError: No module named 'no_such_module'"),
    ("cifar-test-batch-a-list", EVAL, lambda w: (w / "data/cifar-10-batches-py/test_batch").write_bytes(
        pickle.dumps([1, 2, 3])), "test_batch is not a CIFAR batch (it unpickles to a list"),
    ("pt2-damaged", EXTERNAL[:1] + ["{inputs}/bad.pt2"] + EXTERNAL[4:],
     lambda w: (w / "inputs/bad.pt2").write_bytes(b"PK\x03\x04" + bytes(300)), "is not a torch.export file"),
    ("ts-damaged", EXTERNAL[:1] + ["{inputs}/bad.ts"] + EXTERNAL[4:],
     lambda w: (w / "inputs/bad.ts").write_bytes(b"not a program" * 50), "bad.ts is not a TorchScript file"),
    # flags that would be ignored are refused (issue #22)
    ("run-with-checkpoint", EVAL + ["--checkpoint", "{inputs}/other-classes.pt"], None,
     "--checkpoint does not apply to"),
    ("run-with-normalize", EVAL + ["--normalize", "imagenet"], None, "--normalize does not apply to"),
    ("run-with-name", EVAL + ["--name", "other"], None, "--name does not apply to"),
    ("run-with-out-dir", EVAL + ["--out-dir", "elsewhere"], None, "--out-dir does not apply to"),
    ("checkpoint-file-with-normalize", EVAL[:1] + ["{run}/checkpoint.pt"] + EVAL[2:] + ["--normalize", "imagenet"],
     None, "--normalize does not apply to"),
    ("runs-ensemble-with-image-size", EVAL + ["{run}", "--ensemble", "pair", "--image-size", "64"], None,
     "--image-size does not apply to"),
    ("results-folder-with-input-range", EVAL + ["--input-range", "0-255"], recorded("timm:resnet18"),
     "--input-range does not apply to"),
    ("sweep-eval-normalize", ["sweep", "{inputs}/grid.yaml", "--status"], grid({}, {"normalize": "imagenet"}),
     "eval option(s) normalize do not apply to the sweep's run folders"),
    ("sweep-eval-out-dir", ["sweep", "{inputs}/grid.yaml", "--status"], grid({}, {"out_dir": "elsewhere"}),
     "eval option(s) out_dir do not apply to the sweep's run folders"),
    ("seeds-unbounded", TRAIN + ["--seeds", "0-99999999"], None, "--seeds '0-99999999' asks for more than 1000 runs"),
    ("demo-epochs-0", ["demo", "--epochs", "0", "--out-dir", "{results}/demo", "--device", "cpu"], None,
     "--epochs must be at least 1, got 0"),
    # --benchmark, --protocol and image folders (the surfaces wired in for -C-bar, -P, ImageNet-C)
    ("protocol-unknown", EVAL + ["--protocol", "bogus"], None, "unknown --protocol 'bogus'"),
    ("protocol-imagenet-c-on-32-px", EVAL + ["--protocol", "imagenet-c"], None, "imagenet-c"),
    ("protocol-tiny-imagenet-c-on-224-px", EVAL + ["--dataset", "folder:{inputs}/tree", "--protocol", "tiny-imagenet-c"],
     image_tree("tree"), "tiny-imagenet-c"),
    ("protocol-cifar10-c-on-224-px", EVAL + ["--dataset", "folder:{inputs}/tree", "--protocol", "cifar10-c"],
     image_tree("tree"), "cifar10-c"),
    ("benchmark-unknown", EVAL + ["--benchmark", "q"], None, "unknown --benchmark 'q'"),
    ("benchmark-unknown-qualified", EVAL_P[:2] + ["--benchmark", "cifar10-z"], None, "unknown --benchmark 'cifar10-z'"),
    ("p-with-protocol-imagenet-c", EVAL_P + ["--protocol", "imagenet-c"], None, "--protocol imagenet-c is for -C"),
    ("c-bar-with-protocol-scaled", EVAL_P + ["--benchmark", "c-bar", "--protocol", "scaled"], None,
     "--protocol scaled is for -C"),
    ("p-with-no-storage", EVAL_P + ["--no-storage"], None, "--no-storage is for -C corruptions"),
    ("p-on-224-px", EVAL_P + ["--dataset", "folder:{inputs}/tree"], image_tree("tree"), "defined on 32x32 images"),
    ("p-on-64-px", EVAL_P + ["--dataset", "tiny-imagenet"], tiny_imagenet_64, "has 64x64"),
    ("p-with-corruptions-extra", EVAL_P + ["--corruptions", "extra"], None, "--corruptions extra is a -C set"),
    ("p-with-corruptions-none", EVAL_P + ["--corruptions", "none"], None, "--corruptions none is a -C set"),
    ("p-unknown-perturbation", EVAL_P + ["--corruptions", "brightness,wobble"], None, "unknown name 'wobble'"),
    ("p-with-a-c-corruption", EVAL_P + ["--corruptions", "contrast"], None, "unknown name 'contrast'"),
    ("c-bar-unknown-name", EVAL_P + ["--benchmark", "c-bar", "--corruptions", "wobble"], None, "unknown name 'wobble'"),
    ("c-bar-official", EVAL_P + ["--benchmark", "c-bar", "--source", "official"], None,
     "cifar10 has no official C-bar release"),
    ("p-official-without-files", EVAL_P + ["--source", "official"], None, "official cifar10-p files not found"),
    ("p-official-for-a-dataset-without-release", EVAL_P + ["--source", "official", "--dataset", "shapes10"], None,
     "shapes10 has no official perturbation release"),
    ("p-set-of-wrong-shape", EVAL_P + ["--source", "official", "--c-dir", "{inputs}/P", "--corruptions", "gaussian_noise"],
     wrong_pset, "gaussian_noise.npy"),
    ("p-csv-non-number", ["report", "{results}"], with_p_csv(P_ROWS.replace(b"0.010000", b"lots")), "holds a non-number in"),
    ("p-csv-damaged-before-eval", EVAL_P + ["--corruptions", "brightness", "--limit", "4"],
     with_p_csv(b"corruption,severity\nbrightness,0\n"), "no column"),
    ("generate-p-no-storage", GENERATE + ["--dataset", "cifar10", "--benchmark", "p", "--no-storage"], None,
     "--benchmark p has its own generator"),
    ("generate-c-bar-with-protocol", GENERATE + ["--dataset", "cifar10", "--benchmark", "c-bar", "--protocol", "scaled"],
     None, "--benchmark c-bar has its own generator"),
    ("generate-protocol-bogus", GENERATE + ["--dataset", "cifar10", "--protocol", "bogus"], None,
     "unknown --protocol 'bogus'"),
    ("generate-imagenet-c-on-32-px", GENERATE + ["--dataset", "cifar10", "--protocol", "imagenet-c", "--corruptions",
                                                 "contrast"], None, "imagenet-c"),
    ("generate-benchmark-unknown", GENERATE + ["--dataset", "cifar10", "--benchmark", "r"], None,
     "unknown --benchmark 'r'"),
    ("generate-p-on-224-px", GENERATE + ["--dataset", "folder:{inputs}/tree", "--benchmark", "p"], image_tree("tree"),
     "defined on 32x32 images"),
    ("generate-p-unknown-perturbation", GENERATE + ["--dataset", "cifar10", "--benchmark", "p", "--corruptions", "fog"],
     None, "unknown name 'fog'"),
    ("preview-protocol-bogus", ["data", "preview", "--out", "{results}/p.png", "--protocol", "bogus"], None,
     "unknown --protocol 'bogus'"),
    ("preview-imagenet-c-on-32-px", ["data", "preview", "--out", "{results}/p.png", "--protocol", "imagenet-c"], None,
     "imagenet-c"),
    ("folder-without-images", EVAL + ["--dataset", "folder:{inputs}/empty"],
     lambda w: (w / "inputs" / "empty" / "cls").mkdir(parents=True), "holds no images"),
    ("folder-without-class-folders", EVAL + ["--dataset", "folder:{inputs}/flat"],
     image_tree("flat", layout=("x.jpg",)), "has no class folders"),
    ("folder-missing", EVAL + ["--dataset", "folder:{inputs}/nowhere"], None, "not found"),
    ("folder-train-without-val", TRAIN[:1] + ["--dataset", "folder:{inputs}/tv"] + TRAIN[3:],
     image_tree("tv", layout=("train/a/x.jpg", "train/b/y.jpg")), "val"),
    ("report-er-link-bogus", ["report", "{results}", "--er-link", "bogus"], None, "unknown --er-link 'bogus'"),
    ("report-effective-robustness-unknown-shift", ["report", "{results}", "--effective-robustness", "mars"], None,
     "mars"),
    ("download-imagenet-c-bogus-part", ["data", "download", "imagenet-c:bogus", "--data-dir", "{data}"], None,
     "unknown part of imagenet-c in bogus"),
]
SUBPROCESS = {"usage-not-a-number", "device-tpu-eval", "config-binary", "csv-random-bytes",
              "pt2-damaged"}  # torch logs to the real stderr


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns,
                                       p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


def fill(argv, w: Path) -> list[str]:
    paths = {"results": w / "results", "run": w / "results" / "r", "data": w / "data", "inputs": w / "inputs"}
    return [a.format(**paths) for a in argv]


def run_in_process(argv, monkeypatch, capsys) -> tuple[int, str, str]:
    """robench's console entry point, in this process."""
    monkeypatch.setattr(sys, "argv", ["robench", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def refused(argv, world, monkeypatch, capsys, message, in_subprocess=False, env=None) -> str:
    """Run `argv` (placeholders filled) and check the contract: exit 2, one line naming the problem,
    no traceback, the world unchanged. Returns the line."""
    argv = fill(argv, world)
    before = snapshot(world)
    if in_subprocess:
        done = subprocess.run([sys.executable, "-m", "robench", *argv], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=world, timeout=120)
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        code, out, err = run_in_process(argv, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("robench: error: "), err
    assert message in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert snapshot(world) == before, "the world changed"
    assert not (world.parent / "escape").exists()
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, world, monkeypatch, capsys):
    name, argv, setup, message = case
    if setup:
        setup(world)
    refused(argv, world, monkeypatch, capsys, message, in_subprocess=name in SUBPROCESS)


def test_the_catalogue_is_large_and_each_case_distinct():
    assert len(CASES) >= 110 and len({c[0] for c in CASES}) == len(CASES)


def contents(folder: Path) -> dict:
    """Every file under `folder` (hidden ones included) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("files", [
    {"thesis.tex": b"\\documentclass{article}\n% three years of work\n", "notes.txt": b"do not lose\n"},
    {"config.yaml": b"model: small-cnn\n", "checkpoint.pt": b"not robench's", "thesis.tex": b"mine\n"},
    {".git/HEAD": b"ref: refs/heads/main\n", ".git/config": b"[core]\n"},  # hidden files count too
    {"run.json": b"{}", "eval/plot.png": b"\x89PNG"},
], ids=["thesis-and-notes", "run-files-and-a-thesis", "a-git-repository", "a-png-in-eval"])
@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "plain"])
def test_train_never_replaces_a_folder_that_is_not_a_run(files, overwrite, world, monkeypatch, capsys):
    """--overwrite replaces only a robench run; a user's folder under the run's name survives
    byte-identical (before the fix, `--overwrite` deleted thesis.tex and notes.txt and wrote a run)."""
    mine = world / "results" / "notarun"
    for name, data in files.items():
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_bytes(data)
    before = contents(mine)
    argv = TRAIN + ["--name", "notarun"] + (["--overwrite"] if overwrite else [])
    refused(argv, world, monkeypatch, capsys, "is not a robench run")
    assert contents(mine) == before == {k: v for k, v in files.items()}


def test_evaluating_a_folder_never_imports_the_code_its_run_json_records(world, monkeypatch, capsys):
    """A results folder of a user's model, then its factory file is swapped for one that writes a
    marker when imported (a folder someone sent you). Evaluating the folder is refused and imports
    nothing; --trust-code (the explicit opt-in) does import it, which shows the marker works."""
    net = world / "inputs" / "net.py"
    net.write_text("import torch\n\ndef build(num_classes=10):\n    torch.manual_seed(0)\n"
                   "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, num_classes))\n")
    code, out, err = run_in_process(fill(["eval", f"{net}:build", "--name", "mine", "--out-dir", "{results}",
                                          "--corruptions", "none", "--device", "cpu", "--data-dir", "{data}"], world),
                                    monkeypatch, capsys)
    assert code == 0, err
    net.write_text(EVIL)
    marker = world / "inputs" / "marker"
    again = ["eval", "{results}/mine", "--corruptions", "none", "--device", "cpu", "--data-dir", "{data}"]
    refused(again, world, monkeypatch, capsys, "pass --trust-code if you trust this folder")
    assert not marker.exists()
    code, out, err = run_in_process(fill(again + ["--trust-code"], world), monkeypatch, capsys)
    assert marker.read_text() == "called" and code != 0  # trusted: the recorded file was imported and called


def robench_subprocess(argv, world, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robench", *fill(argv, world)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=world, timeout=120)


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")
def test_a_torchscript_eval_prints_nothing_on_stderr(world):
    """torch.jit.load's deprecation warning (2 lines) is not robench's to show on every eval."""
    torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))).save(
        str(world / "inputs" / "net.ts"))
    done = robench_subprocess(EXTERNAL[:1] + ["{inputs}/net.ts"] + EXTERNAL[4:], world)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_robench_debug_shows_the_traceback_of_the_users_code(world):
    with_factory(world)
    argv = EXTERNAL[:1] + ["{inputs}/net.py:raises"] + EXTERNAL[4:]
    done = robench_subprocess(argv, world, env={"ROBENCH_DEBUG": "1"})
    assert done.returncode == 1 and "Traceback" in done.stderr and 'net.py", line 3, in raises' in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "ValueError: width must be even"


def test_pretrained_weights_offline_leave_no_folders_behind(world, monkeypatch, capsys):
    """Offline and not cached, torchvision's --pretrained used to make torch.hub's cache folders and
    print "Downloading ..." before its error; now nothing is made and the error is the only line."""
    pytest.importorskip("torchvision")
    from robench.models import external

    monkeypatch.setattr(external, "_online", lambda host: False)
    argv = EXTERNAL[:1] + ["torchvision:resnet18", "--pretrained"] + EXTERNAL[4:]
    refused(argv, world, monkeypatch, capsys, "cannot get the pretrained weights of torchvision:resnet18",
            env={"TORCH_HOME": str(world / "inputs" / "torch-home")})
    refused(["train", "--dataset", "cifar10", "--model", "torchvision:resnet18", "--pretrained", *TRAIN[5:]], world,
            monkeypatch, capsys, "cannot get the pretrained weights", env={"TORCH_HOME": str(world / "inputs" / "torch-home")})


def test_frost_auto_with_the_photographs_does_not_warn_that_they_are_missing(world, monkeypatch, capsys):
    """--frost auto resolved to the official photographs: no warning that they are not available."""
    from robench.corruptions import frost_textures

    shared = SHARED / "frost"
    if not shared.is_dir():
        pytest.skip(f"the frost photographs of ../shared are not at {shared}")
    shutil.copytree(shared, world / "data" / "frost")
    frost_textures.clear_cache()
    try:
        code, out, err = run_in_process(fill(["eval", "{run}", "--corruptions", "frost", "--severities", "1",
                                              "--source", "generated", "--device", "cpu", "--data-dir", "{data}"],
                                             world), monkeypatch, capsys)
    finally:
        frost_textures.clear_cache()
    assert code == 0, err
    with open(world / "results/r/eval/cifar10-generated.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["corruption"] == "frost"]
    assert [r["frost_textures"] for r in rows] == ["official"]
    assert "not available" not in out + err and "warning" not in out + err


def test_a_bare_checkpoint_is_evaluated_on_the_dataset_it_records(world, monkeypatch, capsys):
    """`robench eval results/x/checkpoint.pt` without --dataset: the checkpoint's dataset, not cifar10."""
    checkpoint = torch.load(world / "results/r/checkpoint.pt", weights_only=True)
    torch.save({**checkpoint, "dataset": "shapes10"}, world / "inputs" / "shapes.pt")
    code, out, err = run_in_process(fill(["eval", "{inputs}/shapes.pt", "--limit", "20", *EXTERNAL[4:]], world),
                                    monkeypatch, capsys)
    assert code == 0, err
    assert json.loads((world / "results/shapes/run.json").read_text())["dataset"] == "shapes10"
    assert [p.name for p in (world / "results/shapes/eval").glob("*.csv")] == ["shapes10-generated.csv"]


@pytest.mark.parametrize("when, kept", [(1, "nothing was kept"), (2, "keeps its last checkpoint; continue with: "
                                                                      "robench train --resume")])
def test_a_second_ctrl_c_during_training_says_what_was_kept(when, kept, world, monkeypatch, capsys):
    """A second Ctrl-C raises KeyboardInterrupt in the training loop (train.interrupts.StopSignals); it used
    to exit 130 with nothing on stderr."""
    from robench.train import loop as train

    original = train.train_one_epoch

    def second_ctrl_c(run, at, stop=None):
        if at.epoch == when:
            raise KeyboardInterrupt
        return original(run, at, stop)

    monkeypatch.setattr(train, "train_one_epoch", second_ctrl_c)
    code, out, err = run_in_process(fill(TRAIN + ["--epochs", "2", "--name", "t"], world), monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 130 and len(lines) == 1 and lines[0].startswith("robench: error: stopped at once"), err
    assert kept in lines[0]
    assert (world / "results" / "t" / "checkpoint.pt").exists() == (when == 2)


def test_ctrl_c_elsewhere_is_one_line(world, monkeypatch, capsys):
    from robench.eval import loop

    monkeypatch.setattr(loop, "_evaluate_run", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    code, out, err = run_in_process(fill(EVAL, world), monkeypatch, capsys)
    assert code == 130 and err.startswith("robench: interrupted") and err.count("\n") == 1, err


def test_report_ignores_the_staging_folder_of_a_killed_overwrite_and_says_so(world, monkeypatch, capsys):
    """`train --overwrite` killed with SIGKILL leaves results/.r.overwrite (a whole run, hidden):
    report ranks r once and names the leftover in a warning."""
    shutil.copytree(world / "results" / "r", world / "results" / ".r.overwrite")
    code, out, err = run_in_process(fill(["report", "{results}", "--format", "json"], world), monkeypatch, capsys)
    assert code == 0, err
    assert [row["run"] for row in json.loads(out)["leaderboard"]] == ["r"]
    assert err.startswith("warning: ignored ") and ".r.overwrite: a hidden folder" in err and err.count("\n") == 1


def test_a_truncated_jpeg_in_a_folder_dataset_is_one_line_and_writes_no_cells(world, monkeypatch, capsys):
    """Found only when its chunk is decoded (mid-evaluation): one line naming the file, exit 2, and no
    eval CSV (the .json's entry and run.json are whole files written before any cell)."""
    image_tree("cut", damage=cut_jpeg, layout=[f"{c}/x.jpg" for c in "abcdefghi"] + ["j/z.jpg"])(world)
    code, out, err = run_in_process(fill(EVAL + ["--dataset", "folder:{inputs}/cut", "--source", "generated"], world),
                                    monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "cannot decode image" in lines[0] and "j/z.jpg" in lines[0], err
    assert "Traceback" not in out + err
    assert not list((world / "results" / "r" / "eval").glob("folder*.csv"))
