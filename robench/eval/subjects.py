"""What `robench eval` measures and where its results go.

A subject is a run folder robench trained (results stay in it), or a model robench did not train
(`timm:<name>`, `torchvision:<name>`, `file.py:factory`, a TorchScript / torch.export file, a
robench model name with `--checkpoint`), or an ensemble of several of these (`--ensemble NAME`).
A model robench did not train gets a run-like folder `<out dir>/<name>/` whose `run.json` says
where it came from, so `robench report` ranks it beside trained runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench.config import DEFAULT_DATASET, RESULTS
from robench.errors import RobenchError, debugging
from robench.models import MODELS, build_model, external
from robench.runfolder.checkpoints import load_checkpoint, load_model
from robench.runfolder.files import (CHECKPOINT, CONFIG, RUN_JSON, check_run_name, file_sha256, read_config, read_json,
                                     safe_name, write_json)


@dataclass
class ModelOptions:
    """How to build a model that is not a run folder (the eval and API flags)."""

    checkpoint: str | None = None
    pretrained: bool = False
    input_range: str | None = None
    normalize: str | None = None
    image_size: int | None = None


def kind_of(spec: str) -> str:
    """run | library | factory | program | checkpoint | robench, or a one-line error."""
    path = Path(spec)
    if path.is_dir():
        if (path / CONFIG).exists():
            return "run"
        if (path / RUN_JSON).exists() and "source" in read_json(path / RUN_JSON):
            return "recorded"
        raise RobenchError(f"{spec} is not a run folder (no {CONFIG}); give the folder robench train wrote, "
                           f"or a model: timm:<name>, torchvision:<name>, file.py:factory, a TorchScript file")
    if spec.startswith(("timm:", "torchvision:")):
        return "library"
    if ".py:" in spec:
        return "factory"
    if path.is_file():
        if path.suffix in (".pt2", ".ts") or external.is_torchscript(path):  # a damaged .ts is still one
            return "program"
        return "checkpoint"
    if ":" not in spec and spec in MODELS:
        return "robench"
    if spec.endswith((".py", ".pt", ".pth", ".pt2", ".ts")):
        raise RobenchError(f"model file {spec} does not exist; give an existing file (a factory as file.py:factory)")
    if "/" in spec:
        raise RobenchError(f"{spec} does not exist: it is not a run folder or a model file; give the folder robench "
                           f"train wrote, or a model")
    raise RobenchError(f"unknown model '{spec}'; give a run folder, timm:<name>, torchvision:<name>, file.py:factory, "
                       f"a TorchScript / torch.export file, or one of: {', '.join(MODELS.names())}")


def build_member(spec: str, num_classes: int, options: ModelOptions) -> tuple[nn.Module, dict]:
    """(the model on the CPU wrapped in its input convention, in eval mode; its description)."""
    kind = kind_of(spec)
    description: dict[str, Any] = {"kind": kind, "spec": _absolute(spec, kind)}
    if kind in ("run", "checkpoint"):
        checkpoint = load_checkpoint(Path(spec))
        if checkpoint["num_classes"] != num_classes:
            raise RobenchError(f"{spec} predicts {checkpoint['num_classes']} classes but the dataset has {num_classes}; "
                               f"evaluate on the dataset the run was trained on")
        model = load_model(Path(spec), torch.device("cpu"))[0]
        description.update(path=str(Path(spec).resolve()), model=checkpoint["model"], epoch=checkpoint.get("epoch"))
        return model, description  # a robench model normalises its own input
    if kind == "library":
        model = {"timm": external.timm_backbone, "torchvision": external.torchvision_backbone}[spec.split(":")[0]](
            spec, num_classes, options.pretrained)
    elif kind == "factory":
        model = external.user_factory(spec, num_classes)
        description["file"] = str(Path(spec.rpartition(":")[0]).resolve())
    elif kind == "program":
        model = external.saved_program(Path(spec))
        description["file"] = str(Path(spec).resolve())
    else:  # a robench model name: its own normalisation, fitted weights from --checkpoint
        model = build_model(spec, num_classes)
    if options.checkpoint:
        external.load_weights(model, options.checkpoint, spec)
        description["checkpoint"] = str(Path(options.checkpoint).resolve())
        description["checkpoint_sha256"] = hashlib.sha256(Path(options.checkpoint).read_bytes()).hexdigest()
    elif kind == "robench":
        raise RobenchError(f"{spec} needs --checkpoint FILE (its trained weights); to evaluate a run, give its folder")
    description["pretrained"] = options.pretrained
    conv = external.convention("library" if kind == "library" else kind, spec, options.input_range,
                               options.normalize, options.image_size, options.pretrained)
    description["input"] = external.convention_dict(conv)
    model = external.InputAdapter(model, conv)
    eval_mode(model)
    return model, description


def _absolute(spec: str, kind: str) -> str:
    """A spec whose files are absolute paths, so that run.json can rebuild it from anywhere."""
    if kind == "factory":
        file, _, factory = spec.rpartition(":")
        return f"{Path(file).resolve()}:{factory}"
    if kind in ("run", "program", "checkpoint"):
        return str(Path(spec).resolve())
    return spec


def eval_mode(model: nn.Module) -> None:
    try:
        model.eval()
    except NotImplementedError:  # torch.export programs are exported in the mode they run in
        for child in model.children():
            if not isinstance(child, torch.fx.GraphModule):
                eval_mode(child)


def check_classes(model: nn.Module, probe: torch.Tensor, num_classes: int, spec: str) -> None:
    """One forward on two test images: the model must give (2, num_classes) logits."""
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as e:
        if debugging():  # ROBENCH_DEBUG=1: the model's own traceback
            raise
        first = (str(e).splitlines() or [""])[0][:200]
        raise RobenchError(f"{spec} failed on a batch of {tuple(probe.shape)} images ({type(e).__name__}: {first}); "
                           f"check --image-size, --input-range and the model's input") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise RobenchError(f"{spec} must return logits of shape (N, classes), got "
                           f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    if out.shape[1] != num_classes:
        raise RobenchError(f"{spec} predicts {out.shape[1]} classes but the dataset has {num_classes}; build it "
                           f"for {num_classes} classes (a factory may take num_classes) or evaluate on its dataset")


@dataclass
class Subject:
    """What eval measures: its specs, where results go and the defaults a run folder supplies."""

    specs: list[str]
    run_dir: Path
    trained: bool  # a run folder robench train wrote (results go into it)
    dataset: str
    limit: int | None = None
    split_options: dict = field(default_factory=dict)
    options: ModelOptions = field(default_factory=ModelOptions)
    name: str = ""
    descriptions: list[dict] = field(default_factory=list)
    label: str | None = None  # run.json's "model": the spec as the user gave it

    def build(self, num_classes: int, probe: torch.Tensor, device: torch.device) -> nn.Module:
        members = []
        for spec in self.specs:
            model, description = build_member(spec, num_classes, self.options)
            check_classes(model, probe, num_classes, spec)
            members.append(model)
            self.descriptions.append(description)
        model = members[0] if len(members) == 1 else external.Ensemble(members)
        return model.to(device)

    def write_run_json(self, model: nn.Module, dataset: str, num_classes: int, device_label: str) -> None:
        """The run-like folder's run.json (nothing for a trained run: its run.json is train's)."""
        if self.trained:
            return
        from robench.runtime.device import versions

        source: dict[str, Any] = {"options": vars(self.options).copy()}
        if len(self.specs) == 1:
            source.update(self.descriptions[0])
        else:
            source.update(kind="ensemble", members=self.descriptions)
        write_json(self.run_dir / RUN_JSON, {
            "name": self.name,
            "model": self.label or (self.specs[0] if len(self.specs) == 1 else f"ensemble of {len(self.specs)}"),
            "policy": "ensemble" if len(self.specs) > 1 else "external", "dataset": dataset,
            "num_classes": num_classes, "parameters": sum(p.numel() for p in model.parameters()),
            "source": source, "input": source.get("input"), "versions": versions(), "device": device_label,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })


def resolve(cfg) -> Subject:
    """The subject of an EvalConfig: one run folder (as train wrote it), or external model(s)."""
    specs = cfg.specs
    checkpoint = str(Path(cfg.checkpoint).resolve()) if cfg.checkpoint else None  # recorded in run.json
    options = ModelOptions(checkpoint, cfg.pretrained, cfg.input_range, cfg.normalize, cfg.image_size)
    kinds = [kind_of(s) for s in specs]
    if len(specs) > 1 and not cfg.ensemble:
        raise RobenchError(f"{len(specs)} models given; evaluate them as one ensemble with --ensemble NAME, "
                           f"or one at a time")
    if not cfg.ensemble or all(k in ("run", "checkpoint", "recorded") for k in kinds):
        check_options_apply(cfg, specs[0], kinds[0])
    if len(specs) == 1 and kinds[0] == "run" and not cfg.ensemble:
        run_dir = Path(specs[0])
        run_config = read_config(run_dir)
        dataset = cfg.dataset or run_config.get("dataset")
        limit = cfg.limit or (run_config.get("test_limit") if dataset == run_config.get("dataset") else None)
        split = {k: run_config.get(k) for k in ("image_column", "label_column", "image_size")}
        return Subject(specs, run_dir, True, dataset, limit, split, options, run_dir.name)
    if len(specs) == 1 and kinds[0] == "recorded" and not cfg.ensemble:  # an external model's folder, again
        run_dir = Path(specs[0])
        run = read_json(run_dir / RUN_JSON)
        recorded = run["source"]
        members = recorded.get("members", [recorded]) if isinstance(recorded, dict) else None
        if not isinstance(members, list) or not all(isinstance(m, dict) and isinstance(m.get("spec"), str)
                                                    for m in members) or not isinstance(recorded.get("options"), dict):
            raise RobenchError(f"{run_dir / RUN_JSON} is damaged (its 'source' does not say how the model was built); "
                               f"evaluate the model itself again with --name {run_dir.name}")
        check_trusted([m["spec"] for m in members], run_dir, cfg.trust_code)
        dataset = cfg.dataset or run.get("dataset", DEFAULT_DATASET)
        return Subject([m["spec"] for m in members], run_dir, False, dataset, cfg.limit, {},
                       ModelOptions(**recorded["options"]), run_dir.name, label=run.get("model"))
    if options.checkpoint and len(specs) > 1:
        raise RobenchError("--checkpoint loads the weights of one model; give each ensemble member as a run "
                           "folder or file instead")
    # Runs and robench checkpoints supply the dataset default (the one they were trained on); otherwise CIFAR-10.
    trained_on = [read_config(Path(s)).get("dataset") if k == "run" else load_checkpoint(Path(s)).get("dataset")
                  for s, k in zip(specs, kinds) if k in ("run", "checkpoint") and not cfg.dataset]
    dataset = cfg.dataset or next((d for d in trained_on if d), DEFAULT_DATASET)
    # A name the user gives is used as given, or refused (as train's --name): a silently changed
    # name ('a/b' -> 'a_b') or one that leaves --out-dir ('..') puts results where nobody looks.
    given = cfg.ensemble if cfg.ensemble is not None else cfg.name
    name = check_run_name(given if given is not None else safe_name(default_name(specs[0])))
    run_dir = Path(cfg.out_dir or RESULTS) / name
    check_results_folder(run_dir, specs)
    return Subject(specs, run_dir, False, dataset, cfg.limit, {}, options, name)


MODEL_OPTIONS = ("checkpoint", "pretrained", "input_range", "normalize", "image_size")


def check_options_apply(cfg, spec: str, kind: str) -> None:
    """A flag that would be silently ignored is refused: a run folder or checkpoint brings its own
    weights and normalisation, a results folder the options its run.json recorded, and a folder's
    results go into its own eval/ (no --name, no --out-dir)."""
    given = [o for o in MODEL_OPTIONS if getattr(cfg, o)]
    if kind in ("run", "recorded") and not cfg.ensemble:
        given += [o for o in ("name", "out_dir") if getattr(cfg, o) is not None]
    if kind not in ("run", "checkpoint", "recorded") or not given:
        return
    flags = ", ".join("--" + o.replace("_", "-") for o in given)
    what = {"run": "a run folder, which brings its own weights and input normalisation and keeps its results "
                   "in its eval/",
            "checkpoint": "a robench checkpoint, which brings its own weights and input normalisation",
            "recorded": "a results folder, which is evaluated as its run.json recorded it, into its eval/"}[kind]
    raise RobenchError(f"{flags} does not apply to {spec}: {what}; drop {flags}, or evaluate another model "
                       f"(e.g. small-cnn --checkpoint FILE) under its own --name")


def check_trusted(specs: list[str], run_dir: Path, trust_code: bool) -> None:
    """A results folder is data someone may have sent: the code its run.json records (a factory
    file, a TorchScript or torch.export program) is loaded only when the user trusts the folder
    (--trust-code), or names that code again on the command line (then it is not read from here)."""
    code = [s for s in specs if ".py:" in s or Path(s).suffix in (".pt2", ".ts")
            or (Path(s).is_file() and external.is_torchscript(Path(s)))]
    if code and not trust_code:
        raise RobenchError(f"{run_dir / RUN_JSON} records code ({code[0]}) that evaluating it would run; robench runs "
                           f"only code named on the command line: give it again (robench eval {code[0]} --name "
                           f"{run_dir.name} --out-dir {run_dir.parent}) or pass --trust-code if you trust this folder")


def default_name(spec: str) -> str:
    """timm:resnet18 -> timm-resnet18; models/net.py:build -> net-build; model.pt -> model."""
    if spec.startswith(("timm:", "torchvision:")):
        return spec.replace(":", "-")
    if ".py:" in spec:
        file, _, factory = spec.rpartition(":")
        return f"{Path(file).stem}-{factory}"
    return Path(spec.rstrip("/")).stem


def check_results_folder(run_dir: Path, specs: list[str]) -> None:
    """Never mix two models' results in one folder, never write into a trained run's folder."""
    if (run_dir / CONFIG).exists():
        raise RobenchError(f"{run_dir} holds a trained run; give the external model another --name")
    if (run_dir / RUN_JSON).exists():
        recorded = read_json(run_dir / RUN_JSON).get("source", {})
        earlier = [m.get("spec") for m in recorded.get("members", [recorded])]
        resolved = [str(Path(s).resolve()) if Path(s).exists() else s for s in specs]
        earlier_resolved = [str(Path(s).resolve()) if s and Path(s).exists() else s for s in earlier]
        if earlier_resolved != resolved:
            raise RobenchError(f"{run_dir} holds the results of {', '.join(map(str, earlier))}; pass --name "
                               f"(or --ensemble) for a new folder, or remove it")


def model_fingerprint(subject: Subject) -> str | None:
    """What identifies the model's cells in the eval CSV: a trained run's checkpoint file hash, or a
    hash of how an external model was built (its spec, files, checkpoint hash, input convention;
    known once `Subject.build` has run). Cells computed for another fingerprint are recomputed."""
    if subject.trained:
        return file_sha256(subject.run_dir / CHECKPOINT) if (subject.run_dir / CHECKPOINT).is_file() else None
    described = json.dumps([subject.descriptions, vars(subject.options)], sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()
