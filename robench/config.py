"""Run configuration: dataclass defaults < YAML file (--config) < explicit CLI flags.

The fully resolved config is what a run folder's config.yaml holds, so a run can be repeated with
`robench train --config results/<run>/config.yaml`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robench.errors import RobenchError


@dataclass
class TrainConfig:
    dataset: str = "cifar10"
    model: str = "resnet18"
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None  # None: the optimizer's default (sgd 0.1, adamw/adabound 1e-3)
    min_lr: float = 0.0
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    policy: str = "standard"
    policy_params: dict[str, Any] = field(default_factory=dict)
    mix: str = "none"
    mix_params: dict[str, Any] = field(default_factory=dict)
    jsd: bool = False
    jsd_lambda: float = 12.0
    teacher: str | None = None  # a run folder or a checkpoint.pt
    kd_temperature: float = 4.0
    kd_alpha: float = 0.9
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    name: str | None = None
    out_dir: str = "results"
    data_dir: str | None = None
    train_limit: int | None = None  # use only the first N training images (quick experiments, tests)
    test_limit: int | None = None
    image_column: str | None = None
    label_column: str | None = None
    image_size: int | None = None

    def validate(self) -> "TrainConfig":
        positive = {"epochs": self.epochs, "batch_size": self.batch_size}
        for key, value in positive.items():
            if value < 1:
                raise RobenchError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
        for key in ("train_limit", "test_limit", "image_size"):
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
        if not 0 <= self.kd_alpha <= 1:
            raise RobenchError(f"--kd-alpha must be in [0, 1], got {self.kd_alpha}")
        if self.kd_temperature <= 0:
            raise RobenchError(f"--kd-temperature must be positive, got {self.kd_temperature}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise RobenchError(f"--device must be auto, cpu or cuda[:N], got {self.device}")
        return self


def field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RobenchError(f"config file {path} does not exist") from None
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
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - field_names(cls))
    if unknown:
        raise RobenchError(f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(field_names(cls)))}")
    try:
        config = cls(**values)
    except TypeError as e:
        raise RobenchError(f"invalid config: {e}") from None
    _check_types(config)
    return config.validate()


def _check_types(config) -> None:
    """YAML values must have the field's type (ints accepted for floats)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        expected = {"int": int, "float": (int, float), "bool": bool, "str": str}
        kind = str(f.type).replace(" | None", "").strip()
        want = expected.get(kind)
        if kind.startswith("dict"):
            want = dict
        if want is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
            raise RobenchError(f"config key '{f.name}' must be {kind}, got {value!r}")


def to_yaml(config) -> str:
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)


def parse_params(items: list[str] | None, what: str) -> dict[str, Any]:
    """`--policy-param magnitude=9 --policy-param num_ops=2` -> {'magnitude': 9, 'num_ops': 2} (YAML-typed)."""
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise RobenchError(f"--{what} expects KEY=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        params[key.strip().replace("-", "_")] = yaml.safe_load(raw)
    return params
