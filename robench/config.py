"""Run configuration: dataclass defaults < YAML file (--config) < explicit CLI flags.

Each option's default and help text are written once, here, in the dataclass; the CLI's flags
are generated from them (robench.cli). The fully resolved config is what a run folder's
config.yaml holds, so a run can be repeated with `robench train --config results/<run>/config.yaml`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robench.corruptions.benchmarks import parse_benchmark, parse_names
from robench.corruptions.protocol import SOURCES, check_protocol_name, parse_severities
from robench.errors import RobenchError
from robench.runfolder.files import check_run_name

# The dataset of a run that names none, and of a model robench did not train when no --dataset is given.
DEFAULT_DATASET = "cifar10"
# Where run folders go when no --out-dir is given.
RESULTS = "results"


def option(default: Any, help: str, flag: str | None = None):
    """A config field with its CLI help; `flag` names a repeatable KEY=VALUE flag for dict fields."""
    metadata = {"help": help, "flag": flag}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    dataset: str = option(DEFAULT_DATASET, "cifar10 | cifar100 | shapes10 | fashion-mnist | mnist | hf:<repo-id> "
                                     "(see robench list datasets).")
    model: str = option("resnet18", "resnet18 | wrn-40-2 | small-cnn | timm:<name> | torchvision:<name> "
                                     "(see robench list models).")
    pretrained: bool = option(False, "timm:/torchvision: models: start from the library's pretrained weights.")
    epochs: int = option(30, "Training epochs.")
    batch_size: int = option(128, "Images per step (under torchrun the global batch, split across the ranks).")
    optimizer: str = option("sgd", "sgd (Nesterov 0.9) | adamw | adabound (see robench list optimizers).")
    lr: float | None = option(None, "Peak learning rate, cosine-annealed per batch. [default: the optimizer's, "
                                    "0.1 for sgd, 1e-3 otherwise]")
    min_lr: float = option(0.0, "Learning rate at the end of the cosine.")
    weight_decay: float = option(5e-4, "Weight decay.")
    label_smoothing: float = option(0.0, "Label smoothing epsilon, e.g. 0.1.")
    policy: str = option("standard", "Augmentation policy: none | standard | simple | cutout | randaugment | "
                                     "autoaugment | trivialaugment | augmix (see robench list policies).")
    policy_params: dict[str, Any] = option({}, "A policy parameter KEY=VALUE, repeatable, e.g. --policy-param "
                                               "magnitude=9.", flag="policy-param")
    mix: str = option("none", "Batch mixer: none | mixup | cutmix | ricap (see robench list mixers).")
    mix_params: dict[str, Any] = option({}, "A mixer parameter KEY=VALUE, repeatable, e.g. --mix-param alpha=1.0.",
                                        flag="mix-param")
    jsd: bool = option(False, "AugMix's Jensen-Shannon consistency loss (needs --policy augmix).")
    jsd_lambda: float = option(12.0, "Weight of the JSD term.")
    teacher: str | None = option(None, "Distil from this run folder or checkpoint.pt.")
    kd_temperature: float = option(4.0, "Distillation temperature T.")
    kd_alpha: float = option(0.9, "Weight of the distillation term (the cross-entropy gets 1 - alpha).")
    seed: int = option(0, "Random seed.")
    device: str = option("auto", "auto | cpu | cuda | cuda:N.")
    compile: bool = option(False, "torch.compile the model.")
    checkpoint_every: int | None = option(None, "Also checkpoint every N steps within an epoch (a checkpoint is "
                                                "always written at the end of each epoch).")
    sync_bn: bool = option(False, "Under torchrun: synchronise BatchNorm statistics across ranks.")
    name: str | None = option(None, "Run folder name. [default: <model>-<policy>-<dataset>-s<seed>]")
    out_dir: str = option(RESULTS, "Where run folders go.")
    data_dir: str | None = option(None, "Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]")
    train_limit: int | None = option(None, "Use only the first N training images (quick experiments, tests).")
    test_limit: int | None = option(None, "Use only the first N test images.")
    image_column: str | None = option(None, "hf: datasets: the image column (detected if omitted).")
    label_column: str | None = option(None, "hf: datasets: the label column (detected if omitted).")
    image_size: int | None = option(None, "Images reach the model at this square size: hf: datasets are resized "
                                          "when loaded, others on the device before the model (bilinear, "
                                          "antialias), e.g. 72 for the Keras tutorial's ResNet50V2.")

    def validate(self) -> "TrainConfig":
        for key in ("epochs", "batch_size", "train_limit", "test_limit", "image_size", "checkpoint_every"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise RobenchError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
        if self.lr is not None and self.lr <= 0:
            raise RobenchError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise RobenchError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise RobenchError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.jsd and self.policy != "augmix":
            raise RobenchError("--jsd needs --policy augmix (the JSD loss compares AugMix views)")
        if self.jsd and self.mix != "none":
            raise RobenchError("--jsd cannot be combined with --mix: the JSD loss needs the unmixed clean image")
        if self.jsd_lambda < 0:
            raise RobenchError(f"--jsd-lambda must be >= 0, got {self.jsd_lambda}")
        if not 0 <= self.kd_alpha <= 1:
            raise RobenchError(f"--kd-alpha must be in [0, 1], got {self.kd_alpha}")
        if self.kd_temperature <= 0:
            raise RobenchError(f"--kd-temperature must be positive, got {self.kd_temperature}")
        check_device(self.device)
        if self.name is not None:  # '' too: an empty --name must not silently become the default
            check_run_name(self.name)
        return self


# Images per eval forward pass when --batch-size is not given. On the CPU a small batch keeps a
# layer's activations in the cache: small-cnn's eval of 96 cells x 2k images took 35 s at 250 and
# 48 s at 1000 (2-core Xeon, benchmarks/RESULTS.md). On a GPU large batches fill the device.
EVAL_BATCH_SIZE = {"cuda": 1000, "cpu": 250}


def eval_batch_size(requested: int | None, device) -> int:
    return requested or EVAL_BATCH_SIZE["cuda" if device.type == "cuda" else "cpu"]


@dataclass
class EvalConfig:
    # One model, or several with --ensemble (the CLI passes a list then).
    run: str | list = option("", "A run folder written by robench train, or a model: timm:<name>, torchvision:<name>, "
                                 "path/to/file.py:factory, a TorchScript or torch.export (.pt2) file, or a robench "
                                 "model name with --checkpoint. Several with --ensemble.")
    benchmark: str = option("c", "c (the -C corruptions of --protocol) | c-bar (CIFAR-10-C-bar's 10 corruptions) | "
                                 "p (CIFAR-10-P: flip probability and top-5 distance on perturbation sequences); "
                                 "cifar10-c-bar, cifar10-p, ... also work.")
    corruptions: str = option("all", "all | standard | extra | none | name,name,... (see robench list corruptions); "
                                     "for c-bar and p: all or their names.")
    severities: str = option("1-5", "1-5 | 3 | 1,5 | 2-3,5.")
    source: str = option("auto", "official (released .npy files) | generated (robench's engine) | auto "
                                 "(official when present).")
    batch_size: int | None = option(None, "Images per forward pass. [default: "
                                          f"{EVAL_BATCH_SIZE['cuda']} on CUDA, {EVAL_BATCH_SIZE['cpu']} on the CPU]")
    seed: int = option(0, "Seed of the generated corruptions.")
    device: str = option("auto", "auto | cpu | cuda | cuda:N.")
    dataset: str | None = option(None, "Evaluate on this dataset instead of the run's.")
    data_dir: str | None = option(None, "Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]")
    c_dir: str | None = option(None, "Folder holding the released files (<corruption>.npy; for --benchmark p "
                                     "<perturbation>.npy). [default: <data dir>/CIFAR-10-C, CIFAR-10-P, ...]")
    limit: int | None = option(None, "Only the first N test images. [default: the run's --test-limit, if any]")
    subset: str = option("all", "all | robustbench-5k (RobustBench's fixed 5,000 ImageNet validation images, in its "
                                "order). Recorded in the eval files.")
    data_path: str | None = option(None, "Image-file datasets: the dataset's folder. [default: <data dir>/imagenet, "
                                         "<data dir>/tiny-imagenet-200]")
    decode: str | None = option(None, "Image-file datasets: tensor (torchvision's decoders, batched; at most 2 levels "
                                      "from PIL after resizing) | pil (PIL, exactly torchvision's PIL transforms). "
                                      "[default: tensor]")
    cache_dir: str | None = option(None, "Image-file datasets: keep the decoded, preprocessed images here (memory-"
                                         "mapped), so a second evaluation skips decoding.")
    protocol: str = option("auto", "Whose generator table makes generated corruptions: cifar10-c (32 px) | "
                                   "tiny-imagenet-c (64 px) | imagenet-c (224 px) | imagenet-c-299 (299 px) | "
                                   "scaled (robench's own: cifar10-c's table scaled to any size) | auto (the "
                                   "official one for the images' size, else scaled). Recorded in the eval files.")
    storage: bool = option(True, "Apply the protocol's storage step to generated images (tiny-imagenet-c and "
                                 "the imagenet-c ones: the quality-85 JPEG the released files are); --no-storage "
                                 "evaluates the images before it.")
    frost: str = option("auto", "Frost textures of generated frost: official (the photographs; an error when "
                                "missing) | procedural (a stand-in) | auto (official when available). "
                                "The choice is recorded in the eval files.")
    force: bool = option(False, "Recompute cells already in the eval CSV (by default an evaluation skips the cells "
                                "done with the same checkpoint, dataset, source, seed and images).")
    checkpoint: str | None = option(None, "State dict for a timm:/torchvision:/file.py: or robench model (plain, or "
                                          "under 'state_dict' / 'model'; a 'module.' prefix is stripped).")
    pretrained: bool = option(False, "timm:/torchvision: models: the library's pretrained weights (downloaded once).")
    input_range: str | None = option(None, "Range of the model's input: 0-1 | 0-255. [default: 0-1]")
    normalize: str | None = option(None, "Normalisation before the model: MEAN,STD | M1,M2,M3,S1,S2,S3 (in the "
                                         "units of --input-range) | imagenet | none. [default: the model's own: "
                                         "the library's for timm/torchvision, none for your files]")
    image_size: int | None = option(None, "Resize images to this square size on the device (bilinear, antialias) "
                                          "before the model, for models trained at another resolution.")
    ensemble: str | None = option(None, "Evaluate the given models as one ensemble (mean of their softmax) named "
                                        "NAME; results go to <out-dir>/NAME/.")
    name: str | None = option(None, "Results folder name of a model robench did not train. [default: from the "
                                    "model, e.g. timm-resnet18]")
    out_dir: str | None = option(None, f"Where results folders of models robench did not train go. [default: {RESULTS}]")
    trust_code: bool = option(False, "Re-evaluating a results folder whose run.json records code (file.py:factory, a "
                                     "TorchScript or torch.export file): load that code. Without it robench runs only "
                                     "code named on the command line.")
    save_predictions: bool = option(False, "Also write each image's predicted class and confidence per cell to "
                                           "eval/<dataset>-<source>-predictions.npz.")

    @property
    def specs(self) -> list[str]:
        return [self.run] if isinstance(self.run, str) else [str(r) for r in self.run]

    def validate(self) -> "EvalConfig":
        if not self.specs or not all(self.specs):
            raise RobenchError("give a run folder or a model to evaluate")
        if self.input_range is not None and self.input_range not in ("0-1", "0-255"):
            raise RobenchError(f"--input-range must be 0-1 or 0-255, got '{self.input_range}'")
        for key in ("batch_size", "limit", "image_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise RobenchError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
        if self.source not in SOURCES:
            raise RobenchError(f"unknown --source '{self.source}'; choose one of: {', '.join(SOURCES)}")
        check_protocol_name(self.protocol)
        parse_names(parse_benchmark(self.benchmark), self.corruptions), parse_severities(self.severities)
        check_device(self.device)
        for name in (self.name, self.ensemble):  # each becomes a folder in --out-dir
            if name is not None:
                check_run_name(name)
        return self


def check_device(device: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise RobenchError(f"--device must be auto, cpu, cuda or cuda:N, got '{device}'")
    return device


def field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def field_help(cls, name: str) -> str:
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]


def field_type(cls, name: str) -> type:
    """The field's type without `| None` (int, float, bool, str or dict)."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RobenchError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise RobenchError(f"config file {path} is a folder; give a YAML file such as recipes/<name>.yaml") from None
    except UnicodeDecodeError:
        raise RobenchError(f"config file {path} is not text (not UTF-8); give a YAML file") from None
    except OSError as e:
        raise RobenchError(f"cannot read config file {path} ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise RobenchError(f"config file {path} is not valid YAML{at}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RobenchError(f"config file {path} must be a mapping of option: value")
    return data


def resolve(cls, yaml_path: str | Path | None, overrides: dict[str, Any]):
    """Defaults, then the YAML file, then the explicit flags (those not None)."""
    values: dict[str, Any] = {}
    if yaml_path:
        values.update(read_yaml(yaml_path))
    values.update({k: v for k, v in overrides.items() if v is not None})
    # YAML may spell keys with dashes, as the flags are spelled.
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - field_names(cls))
    if unknown:
        raise RobenchError(f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(field_names(cls)))}")
    for name, value in values.items():
        _check_type(cls, name, value)
    return cls(**values).validate()


def _check_type(cls, name: str, value: Any) -> None:
    """A YAML value must have the field's type (ints are accepted for floats, bools are not ints)."""
    if value is None:
        return
    kind = field_type(cls, name)
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
    if not ok and name == "run" and cls is EvalConfig:  # several models (an ensemble) come as a list
        ok = isinstance(value, list)
    if ok and kind in (int, float) and isinstance(value, bool):
        ok = False
    if not ok:
        raise RobenchError(f"config key '{name}' must be {kind.__name__}, got {value!r}")


def to_yaml(config) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)


def parse_params(items: list[str] | None, what: str) -> dict[str, Any]:
    """`--policy-param magnitude=9 --policy-param num_ops=2` -> {'magnitude': 9, 'num_ops': 2} (YAML-typed)."""
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise RobenchError(f"--{what} expects KEY=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            params[key.strip().replace("-", "_")] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise RobenchError(f"--{what} {item}: the value is not valid YAML") from None
    return params


@dataclass
class ReportConfig:
    baseline: str | None = option(None, "A run (or seed group) name: adds normalised and relative mCE and the mCE "
                                        "difference with its 95 % interval.")
    group: bool = option(True, "One row per group of runs that differ only in their seed (mean ± std (n)); "
                               "--no-group lists every run.")
    sort: str = option("mCE", "Sort each dataset's rows by this column: mCE | clean | extra | norm. mCE | rel. mCE | "
                              "Δ mCE | RMS-CE | ECE | NLL | run | a corruption's short name | s1..s5.")
    format: str = option("md", "What is printed: md | csv | json | html | latex (booktabs).")
    dataset: str | None = option(None, "Only these datasets (comma-separated).")
    source: str | None = option(None, "Only these sources: official, generated (comma-separated).")
    model: str | None = option(None, "Only these models (comma-separated).")
    policy: str | None = option(None, "Only these policy labels, e.g. standard,augmix+jsd (comma-separated).")
    plots: str | None = option(None, "Write the PNG plots into this folder (needs matplotlib).")
    robustbench: str | None = option(None, "Write RobustBench corruption model cards (<dir>/<dataset>/corruptions/"
                                           "<run>.json) and unaggregated_results.csv into this folder.")
    effective_robustness: str | None = option(None, "Effective robustness (Taori et al. 2020) against this shift: c "
                                                    "(mean -C accuracy) | c-bar | a dataset the runs were evaluated "
                                                    "on, e.g. cifar10.1 (see docs/metrics.md).")
    er_baseline: str | None = option(None, "The runs the effective-robustness line is fitted on: names or globs, "
                                           "comma-separated. [default: every run]")
    er_link: str = option("logit", "The scale of the effective-robustness fit: logit | probit.")

    def validate(self) -> "ReportConfig":
        from robench.report.formats import FORMATS

        FORMATS.get(self.format)
        if self.er_link not in ("logit", "probit"):
            raise RobenchError(f"unknown --er-link '{self.er_link}'; choose logit or probit")
        return self
