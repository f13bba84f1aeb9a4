"""`robench train`: one run = one model trained under one policy, written to results/<run>/.

Read top to bottom: `Step` (one batch: augment, forward, loss), `build` (config -> everything a
run needs), `train_one_epoch`, `save_epoch` (metrics row and checkpoint), and `train`, which
strings them together. The epoch loop never waits for the device: loss and error are summed on
the device and read once per epoch.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from robench.augment import make_mixer, make_policy
from robench.config import TrainConfig, to_yaml
from robench.data import Split, load_split
from robench.data.download import set_data_dir
from robench.data.loader import DeviceLoader
from robench.errors import RobenchError
from robench.losses import Objective, one_hot
from robench.metrics import count_correct
from robench.models import MODELS, build_model
from robench.optim import OPTIMIZERS, cosine_schedule, default_lr, make_optimizer
from robench.progress import progress_bar
from robench.runfiles import (CHECKPOINT, CONFIG, METRICS, RUN_JSON, atomic_write_csv, atomic_write_text,
                              policy_label, safe_name, write_json)
from robench.runs import atomic_torch_save, autocast, device_name, load_model, resolve_device, versions

METRIC_FIELDS = ["epoch", "lr", "train_loss", "train_error", "test_error", "images_per_s", "seconds"]


# ----------------------------------------------------------------------------- one step


class Step:
    """One batch: the views the policy (and mixer) make, one forward over all of them, the loss.

    With JSD the model sees three views of each image in one forward (the clean image after the
    base crop+flip, and two AugMix views of that same image); otherwise one view, mixed when a
    mixer is set. A teacher, when given, sees the first view.
    """

    def __init__(self, cfg: TrainConfig, model, num_classes: int, device: torch.device, teacher=None):
        self.model, self.num_classes, self.device, self.teacher = model, num_classes, device, teacher
        self.objective = Objective.from_config(cfg)
        if self.objective.needs_teacher != (teacher is not None):
            raise ValueError("a teacher model is needed exactly when the config names one")
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        if cfg.jsd:
            self.base = make_policy(cfg.policy_params.get("base", "standard"))
            self.policy = make_policy("augmix", **{**cfg.policy_params, "base": "none"})
        else:
            self.base, self.policy = None, make_policy(cfg.policy, **cfg.policy_params)
        self.mixer = make_mixer(cfg.mix, num_classes, **cfg.mix_params) if cfg.mix != "none" else None

    def inputs(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(views stacked view-major, float in [0, 1]; soft targets of the first view's images)."""
        g = self.generator
        if self.base is not None:
            clean = self.base(images, generator=g)
            views = [clean.float().div_(255), self.policy(clean, generator=g, dtype=torch.float32),
                     self.policy(clean, generator=g, dtype=torch.float32)]
            return torch.cat(views), one_hot(labels, self.num_classes)
        x = self.policy(images, generator=g, dtype=torch.float32)
        if self.mixer is not None:
            return self.mixer(x, labels, generator=g)
        return x, one_hot(labels, self.num_classes)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits of the first view, for the train error)."""
        x, targets = self.inputs(images, labels)
        n = labels.shape[0]
        with autocast(self.device):
            logits = self.model(x)
            teacher_logits = None
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_logits = self.teacher(x[:n])
        return self.objective(logits, targets, teacher_logits), logits[:n]


# ----------------------------------------------------------------------------- building a run


@dataclass
class Run:
    """Everything a training run holds while it trains."""

    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    train_split: Split
    test_split: Split
    model: torch.nn.Module
    forward: Callable  # the model, compiled when --compile
    loader: DeviceLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: Step


def default_run_name(cfg: TrainConfig) -> str:
    label = policy_label(cfg.policy, cfg.mix, cfg.jsd).replace("+", "-")
    return safe_name(f"{cfg.model}-{label}-{cfg.dataset}-s{cfg.seed}")


def check_names(cfg: TrainConfig) -> None:
    """Fail on unknown names or bad parameters before any data is loaded or any folder is made,
    and record the policy's and mixer's fully resolved parameters (defaults included) in cfg."""
    MODELS.get(cfg.model)
    OPTIMIZERS.get(cfg.optimizer)
    cfg.policy_params = dict(make_policy(cfg.policy, **cfg.policy_params).config)
    cfg.mix_params = dict(make_mixer(cfg.mix, num_classes=2, **cfg.mix_params).config)


def check_run_dir(cfg: TrainConfig, overwrite: bool) -> Path:
    """The run folder; an existing run there is an error unless --overwrite (removed only once the
    new run's data and model are ready, so a failed start never costs the old run)."""
    run_dir = Path(cfg.out_dir) / cfg.name
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RobenchError(f"{run_dir} already holds a run; pass --name for a new one or --overwrite to replace it")
    return run_dir


def load_teacher(cfg: TrainConfig, device: torch.device, num_classes: int, probe: torch.Tensor):
    if cfg.teacher is None:
        return None
    teacher = load_model(Path(cfg.teacher), device)[0]
    with torch.no_grad():
        out = teacher(probe.to(device)).shape[1]
    if out != num_classes:
        raise RobenchError(f"teacher {cfg.teacher} predicts {out} classes, the dataset has {num_classes}")
    return teacher


def build(cfg: TrainConfig, overwrite: bool = False) -> Run:
    """Resolve the config, check every name, load the data and make the model, optimizer and step.
    Nothing is written yet."""
    set_data_dir(cfg.data_dir)
    device = resolve_device(cfg.device)
    cfg.lr = default_lr(cfg.optimizer) if cfg.lr is None else cfg.lr
    cfg.name = cfg.name or default_run_name(cfg)
    check_names(cfg)
    run_dir = check_run_dir(cfg, overwrite)
    options = dict(image_column=cfg.image_column, label_column=cfg.label_column, image_size=cfg.image_size)
    train_split = load_split(cfg.dataset, True, limit=cfg.train_limit, **options)
    test_split = load_split(cfg.dataset, False, limit=cfg.test_limit, **options)
    teacher = load_teacher(cfg, device, train_split.num_classes, test_split.images[:2])
    torch.manual_seed(cfg.seed)
    # The model normalises its own input with the training set's channel statistics.
    pixels = train_split.images.float() / 255
    mean, std = pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    del pixels
    model = build_model(cfg.model, train_split.num_classes, mean, std, cfg.image_size, cfg.pretrained).to(device)
    forward = torch.compile(model) if cfg.compile else model
    loader = DeviceLoader(train_split.images, train_split.labels, cfg.batch_size, device, seed=cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg.epochs * len(loader), cfg.min_lr)
    step = Step(cfg, forward, train_split.num_classes, device, teacher)
    return Run(cfg, run_dir, device, train_split, test_split, model, forward, loader, optimizer, scheduler, step)


# ----------------------------------------------------------------------------- one epoch


def train_one_epoch(run: Run, epoch: int) -> dict:
    """One pass over the training set; returns the epoch's metrics row (read from the device once)."""
    run.model.train()
    started, seen = time.time(), 0
    loss_sum = torch.zeros((), device=run.device)
    wrong = torch.zeros((), dtype=torch.long, device=run.device)
    with progress_bar(f"epoch {epoch}/{run.cfg.epochs}", total=len(run.loader) * run.cfg.batch_size) as bar:
        for images, labels in run.loader:
            loss, logits = run.step(images, labels)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            run.scheduler.step()
            loss_sum += loss.detach() * labels.shape[0]
            wrong += (logits.argmax(1) != labels).sum()
            seen += labels.shape[0]
            bar.advance(labels.shape[0])
    train_loss, train_error = loss_sum.item() / seen, 100 * wrong.item() / seen  # the epoch's one sync
    seconds = time.time() - started
    run.model.eval()
    test = run.test_split
    correct = count_correct(run.forward, test.images, test.labels, batch_size=max(256, run.cfg.batch_size),
                            device=run.device)
    return dict(epoch=epoch, lr=f"{run.optimizer.param_groups[0]['lr']:.6g}", train_loss=f"{train_loss:.4f}",
                train_error=f"{train_error:.2f}", test_error=f"{100 * (1 - correct / len(test)):.2f}",
                images_per_s=f"{seen / seconds:.1f}", seconds=f"{seconds:.2f}")


def save_epoch(run: Run, rows: list[dict]) -> None:
    """The metrics so far and the checkpoint after the last of them, each written atomically."""
    atomic_write_csv(run.run_dir / METRICS, METRIC_FIELDS, rows)
    split = run.train_split
    atomic_torch_save({"model": run.cfg.model, "num_classes": split.num_classes, "classes": list(split.classes),
                       "dataset": run.cfg.dataset, "epoch": int(rows[-1]["epoch"]), "image_size": run.cfg.image_size,
                       "state_dict": run.model.state_dict(), "optimizer": run.optimizer.state_dict()},
                      run.run_dir / CHECKPOINT)


# ----------------------------------------------------------------------------- the whole run


def train(cfg: TrainConfig, overwrite: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Train and write the run folder; returns its path."""
    started = time.time()
    run = build(cfg, overwrite)
    if run.run_dir.exists():
        shutil.rmtree(run.run_dir)  # --overwrite, checked in build
    run.run_dir.mkdir(parents=True)
    atomic_write_text(run.run_dir / CONFIG, to_yaml(cfg))
    echo(f"training {cfg.model} on {cfg.dataset} ({len(run.train_split)} images, {run.train_split.num_classes} "
         f"classes) with policy {policy_label(cfg.policy, cfg.mix, cfg.jsd)} on {device_name(run.device)} "
         f"-> {run.run_dir}")
    rows: list[dict] = []
    for epoch in range(1, cfg.epochs + 1):
        rows.append(train_one_epoch(run, epoch))
        save_epoch(run, rows)
        row = rows[-1]
        echo(f"epoch {epoch:>3}/{cfg.epochs}  loss {row['train_loss']}  train err {float(row['train_error']):5.2f}%  "
             f"test err {float(row['test_error']):5.2f}%  {float(row['images_per_s']):,.0f} img/s  {row['seconds']}s")

    split = run.train_split
    write_json(run.run_dir / RUN_JSON, {
        "name": cfg.name, "model": cfg.model, "policy": cfg.policy, "policy_params": cfg.policy_params,
        "mix": cfg.mix, "jsd": cfg.jsd, "label_smoothing": cfg.label_smoothing, "optimizer": cfg.optimizer,
        "teacher": cfg.teacher, "dataset": cfg.dataset, "preprocessing": split.preprocessing,
        "num_classes": split.num_classes, "train_images": len(split), "test_images": len(run.test_split),
        "seed": cfg.seed, "epochs": cfg.epochs, "parameters": sum(p.numel() for p in run.model.parameters()),
        "clean_error": round(float(rows[-1]["test_error"]), 4), "versions": versions(),
        "device": device_name(run.device), "wall_time_s": round(time.time() - started, 2), "config": asdict(cfg),
    })
    return run.run_dir
