"""`robench train`: one run = one model trained under one policy, written to results/<run>/."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from robench import losses
from robench.config import TrainConfig, to_yaml
from robench.data import load_split
from robench.data.download import set_data_dir
from robench.data.loader import DeviceLoader
from robench.errors import RobenchError
from robench.evaluate import count_correct
from robench.models import MODELS, build_model
from robench.optim import cosine_schedule, default_lr, make_optimizer
from robench.progress import progress_bar
from robench.runs import (CHECKPOINT, CONFIG, METRICS, RUN_JSON, atomic_torch_save, atomic_write_csv,
                          atomic_write_text, autocast, device_name, load_model, resolve_device, versions, write_json)

METRIC_FIELDS = ["epoch", "lr", "train_loss", "train_error", "test_error", "images_per_s", "seconds"]


def default_run_name(cfg: TrainConfig) -> str:
    parts = [cfg.model, cfg.policy]
    if cfg.mix != "none":
        parts.append(cfg.mix)
    if cfg.jsd:
        parts.append("jsd")
    parts += [cfg.dataset, f"s{cfg.seed}"]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts))


def load_data(cfg: TrainConfig, train: bool):
    options = dict(image_column=cfg.image_column, label_column=cfg.label_column, image_size=cfg.image_size,
                   limit=cfg.train_limit if train else cfg.test_limit)
    split = load_split(cfg.dataset, train, **options)
    limit = options["limit"]
    if limit and len(split) > limit:
        split.images, split.labels = split.images[:limit], split.labels[:limit]
    return split


class Step:
    """One optimisation step's forward and loss under the configured policy, mixer, JSD and teacher."""

    def __init__(self, cfg: TrainConfig, model, num_classes: int, device: torch.device, teacher=None):
        from robench.augment import make_mixer, make_policy

        self.cfg, self.model, self.k, self.device, self.teacher = cfg, model, num_classes, device, teacher
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        if cfg.jsd:
            # JSD: one clean image (after the base crop+flip), and two AugMix views of that same image.
            self.base = make_policy(cfg.policy_params.get("base", "standard"))
            self.policy = make_policy("augmix", **{**cfg.policy_params, "base": "none"})
        else:
            self.policy = make_policy(cfg.policy, **cfg.policy_params)
        self.mixer = make_mixer(cfg.mix, num_classes=num_classes, **cfg.mix_params) if cfg.mix != "none" else None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (loss, logits on the un-augmented-view images for the train error)."""
        cfg, g = self.cfg, self.generator
        targets = losses.one_hot(labels, self.k)
        if cfg.jsd:
            clean = self.base(images, generator=g)
            views = [clean.float() / 255 if clean.dtype == torch.uint8 else clean]
            views += [self.policy(clean, generator=g), self.policy(clean, generator=g)]
            with autocast(self.device):
                logits_clean, logits_1, logits_2 = self.model(torch.cat(views)).chunk(3)
            loss = losses.soft_cross_entropy(logits_clean, losses.smooth(targets, cfg.label_smoothing))
            return loss + cfg.jsd_lambda * losses.jsd_consistency(logits_clean, logits_1, logits_2), logits_clean
        x = self.policy(images, generator=g)
        if self.mixer is not None:
            x, targets = self.mixer(x, labels, generator=g)
        targets = losses.smooth(targets, cfg.label_smoothing)
        with autocast(self.device):
            logits = self.model(x)
            if self.teacher is None:
                return losses.soft_cross_entropy(logits, targets), logits
            with torch.no_grad():
                teacher_logits = self.teacher(x)
        return losses.distillation(logits, teacher_logits, targets, cfg.kd_temperature, cfg.kd_alpha), logits


def check_run_dir(cfg: TrainConfig, overwrite: bool) -> Path:
    """The run folder; an existing run there is an error unless --overwrite (removed only once the
    new run's data and model are ready, so a failed start never costs the old run)."""
    run_dir = Path(cfg.out_dir) / cfg.name
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RobenchError(f"{run_dir} already holds a run; pass --name for a new one or --overwrite to replace it")
    return run_dir


def check_names(cfg: TrainConfig) -> None:
    """Fail on unknown names or bad parameters before any data is loaded or any folder is made,
    and record the policy's and mixer's fully resolved parameters (defaults included) in cfg."""
    from robench.augment import make_mixer, make_policy

    if cfg.model not in MODELS:
        build_model(cfg.model, 2)  # raises the unknown-name error
    default_lr(cfg.optimizer)
    cfg.policy_params = dict(make_policy(cfg.policy, **cfg.policy_params).config)
    cfg.mix_params = dict(make_mixer(cfg.mix, num_classes=2, **cfg.mix_params).config)


def train(cfg: TrainConfig, overwrite: bool = False, echo: Callable[[str], None] = print) -> Path:
    """Train and write the run folder; returns its path."""
    started = time.time()
    set_data_dir(cfg.data_dir)
    device = resolve_device(cfg.device)
    cfg.lr = default_lr(cfg.optimizer) if cfg.lr is None else cfg.lr
    cfg.name = cfg.name or default_run_name(cfg)
    check_names(cfg)
    teacher = load_model(Path(cfg.teacher), device)[0] if cfg.teacher else None
    run_dir = check_run_dir(cfg, overwrite)
    train_split, test_split = load_data(cfg, True), load_data(cfg, False)
    if teacher is not None:
        with torch.no_grad():
            out = teacher(test_split.images[:2].to(device)).shape[1]
        if out != train_split.num_classes:
            raise RobenchError(f"teacher {cfg.teacher} predicts {out} classes, the dataset has {train_split.num_classes}")
    torch.manual_seed(cfg.seed)
    pixels = train_split.images.float() / 255
    mean, std = pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    del pixels
    model = build_model(cfg.model, train_split.num_classes, mean, std).to(device)
    forward = torch.compile(model) if cfg.compile else model
    loader = DeviceLoader(train_split.images, train_split.labels, cfg.batch_size, device, seed=cfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg.epochs * len(loader), cfg.min_lr)
    step = Step(cfg, forward, train_split.num_classes, device, teacher)
    test_images, test_labels = test_split.images.to(device), test_split.labels.to(device)

    if run_dir.exists():
        shutil.rmtree(run_dir)  # --overwrite, checked above
    run_dir.mkdir(parents=True)
    atomic_write_text(run_dir / CONFIG, to_yaml(cfg))
    rows: list[dict] = []
    test_error = float("nan")
    echo(f"training {cfg.model} on {cfg.dataset} ({len(train_split)} images, {train_split.num_classes} classes) "
         f"with policy {cfg.policy} on {device_name(device)} -> {run_dir}")
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        epoch_start, seen, loss_sum, wrong = time.time(), 0, 0.0, 0
        with progress_bar(f"epoch {epoch}/{cfg.epochs}", total=len(loader) * cfg.batch_size) as bar:
            for images, labels in loader:
                loss, logits = step(images, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                loss_sum += loss.item() * labels.shape[0]
                wrong += (logits.argmax(1) != labels).sum().item()
                seen += labels.shape[0]
                bar.advance(labels.shape[0])
        seconds = time.time() - epoch_start
        model.eval()
        correct = count_correct(forward, test_images, test_labels, batch_size=max(256, cfg.batch_size), device=device)
        test_error = 100 * (1 - correct / len(test_split))
        rows.append(dict(epoch=epoch, lr=f"{optimizer.param_groups[0]['lr']:.6g}",
                         train_loss=f"{loss_sum / seen:.4f}", train_error=f"{100 * wrong / seen:.2f}",
                         test_error=f"{test_error:.2f}", images_per_s=f"{seen / seconds:.1f}", seconds=f"{seconds:.2f}"))
        atomic_write_csv(run_dir / METRICS, METRIC_FIELDS, rows)
        atomic_torch_save(_checkpoint(cfg, model, optimizer, epoch, train_split), run_dir / CHECKPOINT)
        echo(f"epoch {epoch:>3}/{cfg.epochs}  loss {loss_sum / seen:.4f}  train err {100 * wrong / seen:5.2f}%  "
             f"test err {test_error:5.2f}%  {seen / seconds:,.0f} img/s  {seconds:.1f}s")

    write_json(run_dir / RUN_JSON, {
        "name": cfg.name, "model": cfg.model, "policy": cfg.policy, "policy_params": cfg.policy_params,
        "mix": cfg.mix, "jsd": cfg.jsd, "label_smoothing": cfg.label_smoothing, "optimizer": cfg.optimizer,
        "teacher": cfg.teacher, "dataset": cfg.dataset, "preprocessing": train_split.preprocessing,
        "num_classes": train_split.num_classes, "train_images": len(train_split), "test_images": len(test_split),
        "seed": cfg.seed, "epochs": cfg.epochs, "parameters": sum(p.numel() for p in model.parameters()),
        "clean_error": round(test_error, 4), "versions": versions(), "device": device_name(device),
        "wall_time_s": round(time.time() - started, 2), "config": asdict(cfg),
    })
    return run_dir


def _checkpoint(cfg: TrainConfig, model, optimizer, epoch: int, split) -> dict:
    return {"model": cfg.model, "num_classes": split.num_classes, "classes": list(split.classes),
            "dataset": cfg.dataset, "epoch": epoch, "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict()}
