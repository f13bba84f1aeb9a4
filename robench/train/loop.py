"""`robench train`: one run = one model trained under one policy, written to results/<run>/.

Read top to bottom: `Step` (one batch: augment, forward, loss), `build` (config -> everything a
run needs), `train_one_epoch`, `save_epoch` (metrics row and checkpoint), and `train`, which
strings them together. The epoch loop never waits for the device: loss and error are summed on
the device and read once per epoch (and at each --checkpoint-every checkpoint).

Under torchrun (robench.runtime.distributed) each rank trains a DistributedDataParallel replica on its
share of every global batch, with its own augmentation stream; sums are all-reduced and only rank
0 writes or prints. Resuming (robench.train.resume) and stopping on signals or a non-finite loss
(robench.train.interrupts) hook in at step and epoch boundaries; which folder a new run writes into
until its first epoch ends is robench.runfolder.staging.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from robench.augment import make_mixer, make_policy
from robench.config import TrainConfig, eval_batch_size, to_yaml
from robench.data import Split, load_split
from robench.data.download import set_data_dir
from robench.data.loader import DeviceLoader
from robench.data.stream import ChunkedSplit
from robench.errors import RobenchError
from robench.eval.metrics import count_correct
from robench.models import MODELS, build_model
from robench.progress import progress_bar
from robench.runfolder import staging
from robench.runfolder.checkpoints import atomic_torch_save, load_model
from robench.runfolder.files import (CHECKPOINT, CONFIG, METRIC_FIELDS, METRICS, RUN_JSON, atomic_write_csv,
                                     atomic_write_text, check_run_name, policy_label, safe_name, write_json)
from robench.runtime import distributed
from robench.runtime.device import autocast, device_name, versions
from robench.train import interrupts
from robench.train.losses import Objective, one_hot
from robench.train.optim import OPTIMIZERS, cosine_schedule, default_lr, make_optimizer
from robench.train.resume import load_resumable, rng_state, set_rng_state

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
        # Each rank draws its own augmentations; rank 0 (and a one-process run) from the seed itself.
        self.generator = torch.Generator(device=device).manual_seed(distributed.rank_seed(cfg.seed, distributed.rank()))
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
class Training:
    """Everything a training holds while it trains: its config, data, model, optimizer and where it writes."""

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
    rows: list = field(default_factory=list)  # the metrics rows of the finished epochs
    folder: Path | None = None  # where files go now: run_dir, or its staging folder until epoch 1 ends (--overwrite)


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


def load_teacher(cfg: TrainConfig, device: torch.device, num_classes: int, probe: torch.Tensor):
    if cfg.teacher is None:
        return None
    teacher = load_model(Path(cfg.teacher), device)[0]
    with torch.no_grad():
        out = teacher(probe.to(device)).shape[1]
    if out != num_classes:
        raise RobenchError(f"teacher {cfg.teacher} predicts {out} classes, the dataset has {num_classes}")
    return teacher


def resolve_run(cfg: TrainConfig) -> TrainConfig:
    """Fill in what the config leaves to defaults (lr, name, parameters) and check every name."""
    cfg.lr = default_lr(cfg.optimizer) if cfg.lr is None else cfg.lr
    cfg.name = check_run_name(cfg.name if cfg.name is not None else default_run_name(cfg))
    check_names(cfg)
    return cfg


def build(cfg: TrainConfig, overwrite: bool = False, resume: bool = False) -> Training:
    """Resolve the config, check every name, load the data and make the model, optimizer and step.
    Nothing is written yet."""
    set_data_dir(cfg.data_dir)
    device = distributed.init(cfg.device)
    rank, world = distributed.rank(), distributed.world_size()
    if cfg.batch_size % world:
        raise RobenchError(f"--batch-size {cfg.batch_size} is the global batch and must divide evenly across "
                           f"{world} processes; use a multiple of {world}")
    resolve_run(cfg)
    run_dir = Path(cfg.out_dir) / cfg.name
    if not resume:
        staging.check_start(run_dir, overwrite)  # before the data loads: a taken name fails at once
    options = dict(image_column=cfg.image_column, label_column=cfg.label_column, image_size=cfg.image_size)
    # Rank 0 loads (and downloads) first; the others then read its cache.
    if not distributed.is_main():
        distributed.barrier()
    train_split = load_split(cfg.dataset, True, limit=cfg.train_limit, **options)
    test_split = load_split(cfg.dataset, False, limit=cfg.test_limit, **options)
    if isinstance(test_split, ChunkedSplit):  # image files: the end-of-epoch test pass slices tensors
        test_split = test_split.in_memory()
    if distributed.is_main():
        distributed.barrier()
    teacher = load_teacher(cfg, device, train_split.num_classes, test_split.images[:2])
    torch.manual_seed(cfg.seed)
    # The model normalises its own input with the training set's channel statistics.
    pixels = train_split.images.float() / 255
    mean, std = pixels.mean(dim=(0, 2, 3)).tolist(), pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    del pixels
    model = build_model(cfg.model, train_split.num_classes, mean, std, cfg.image_size, cfg.pretrained)
    if cfg.sync_bn and world > 1:
        if device.type != "cuda":
            raise RobenchError("--sync-bn needs CUDA ranks (torch's SyncBatchNorm runs on GPUs only); drop it on the CPU")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    forward = model
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(forward) if cfg.compile else forward
    loader = DeviceLoader(train_split.images, train_split.labels, cfg.batch_size, device, seed=cfg.seed,
                          rank=rank, world_size=world)
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = cosine_schedule(optimizer, cfg.epochs * len(loader), cfg.min_lr)
    step = Step(cfg, forward, train_split.num_classes, device, teacher)
    return Training(cfg, run_dir, device, train_split, test_split, model, forward, loader, optimizer, scheduler, step)


# ----------------------------------------------------------------------------- one epoch


@dataclass
class Position:
    """Where training stands: `epoch` (1-based) is under way with `step` of its batches done, and its
    running sums so far (device tensors, read only at checkpoints and at the epoch's end)."""

    epoch: int
    step: int
    loss_sum: torch.Tensor
    wrong: torch.Tensor
    seen: int = 0
    seconds: float = 0.0  # training time of this epoch before the current process took over

    @classmethod
    def start(cls, epoch: int, device: torch.device) -> "Position":
        return cls(epoch, 0, torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device))


def train_one_epoch(run: Training, at: Position, stop: interrupts.StopSignals | None = None) -> dict:
    """The rest of epoch `at.epoch` from batch `at.step`; returns the epoch's metrics row (read from
    the device once). Checkpoints every --checkpoint-every steps; on SIGINT/SIGTERM checkpoints and
    raises interrupts.Interrupted."""
    run.model.train()
    cfg, started = run.cfg, time.time()
    every = cfg.checkpoint_every or 0
    run.loader.resume(at.epoch - 1, at.step)
    with progress_bar(f"epoch {at.epoch}/{cfg.epochs}", total=len(run.loader) * cfg.batch_size,
                      enabled=distributed.is_main()) as bar:
        bar.advance(at.step * cfg.batch_size)
        for images, labels in run.loader:
            loss, logits = run.step(images, labels)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            run.scheduler.step()
            at.loss_sum += loss.detach() * labels.shape[0]
            at.wrong += (logits.argmax(1) != labels).sum()
            at.seen += labels.shape[0]
            at.step += 1
            bar.advance(cfg.batch_size)
            if at.step == len(run.loader):
                break  # the epoch's end is checkpointed by save_epoch
            stopping = stop is not None and stop.requested(at.step)
            if stopping or (every and at.step % every == 0):
                save_checkpoint(run, replace(at, seconds=at.seconds + time.time() - started))
            if stopping:
                raise interrupts.Interrupted(f"stopped by {stop.name} in epoch {at.epoch} after step {at.step}; "
                                         f"checkpoint saved; continue with: robench train --resume {run.run_dir}")
    loss_sum, wrong, seen, bad = totals(run, at)  # the epoch's one sync
    interrupts.stop_if_non_finite(bad, f"epoch {at.epoch}", last_good(run))
    train_loss, train_error = loss_sum / seen, 100 * wrong / seen
    seconds = at.seconds + time.time() - started
    run.model.eval()
    for buffer in run.model.buffers():  # BatchNorm statistics as rank 0 has them (what its checkpoint holds)
        distributed.broadcast_(buffer)
    test = run.test_split
    share = distributed.share(len(test))
    correct = count_correct(run.model, test.images[share], test.labels[share], batch_size=eval_batch_size(None, run.device),
                            device=run.device)
    if distributed.world_size() > 1:
        correct = int(distributed.all_reduce_sum(torch.tensor(correct, device=run.device)).item())
    return dict(epoch=at.epoch, lr=f"{run.optimizer.param_groups[0]['lr']:.6g}", train_loss=f"{train_loss:.4f}",
                train_error=f"{train_error:.2f}", test_error=f"{100 * (1 - correct / len(test)):.2f}",
                images_per_s=f"{seen / seconds:.1f}", seconds=f"{seconds:.2f}")


def totals(run: Training, at: Position) -> tuple[float, int, int, float]:
    """The epoch's (loss sum, wrong, images, non-finite flag) so far, summed over the ranks: one
    all-reduce and one device read."""
    packed = torch.stack([at.loss_sum.double(), at.wrong.double(),
                          torch.tensor(float(at.seen), dtype=torch.float64, device=run.device),
                          interrupts.non_finite(at.loss_sum, run.model)])
    loss_sum, wrong, seen, bad = distributed.all_reduce_sum(packed).tolist()
    return loss_sum, int(wrong), int(seen), bad


def last_good(run: Training) -> str:
    if run.folder is None or not (run.folder / CHECKPOINT).exists():
        return "none was written yet"
    return f"{run.folder / CHECKPOINT}"


def save_checkpoint(run: Training, at: Position) -> None:
    """Everything needed to continue from `at` (robench.train.resume), written atomically by rank 0 after
    checking that the loss and the weights are finite. Every rank must call it (the ranks' random
    states are gathered)."""
    loss_sum, wrong, seen, bad = totals(run, at)
    partial = dict(loss_sum=loss_sum, wrong=wrong, seen=seen, seconds=at.seconds)  # loss_sum: a float32's exact value
    interrupts.stop_if_non_finite(bad, f"epoch {at.epoch} (by step {at.step})", last_good(run))
    rng = distributed.all_gather_objects(rng_state(run.step.generator))
    if not distributed.is_main():
        return
    split = run.train_split
    atomic_torch_save({"model": run.cfg.model, "num_classes": split.num_classes, "classes": list(split.classes),
                       "dataset": run.cfg.dataset, "image_size": run.cfg.image_size, "epoch": at.epoch - 1 if at.step else at.epoch,
                       "state_dict": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                       "scheduler": run.scheduler.state_dict(), "rows": run.rows, "position": at.step,
                       "partial": partial, "rng": rng, "world_size": distributed.world_size()},
                      run.folder / CHECKPOINT)


def save_epoch(run: Training, epoch: int) -> None:
    """The metrics so far and the checkpoint at the end of `epoch`, each written atomically."""
    if distributed.is_main():
        atomic_write_csv(run.folder / METRICS, METRIC_FIELDS, run.rows)
    save_checkpoint(run, Position.start(epoch, run.device))


def restore(run: Training) -> Position:
    """Load the run's last checkpoint into `run`; returns where to continue."""
    checkpoint = load_resumable(run.run_dir, distributed.world_size())
    run.model.load_state_dict(checkpoint["state_dict"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    run.rows = list(checkpoint["rows"])
    set_rng_state(checkpoint["rng"][distributed.rank()], run.step.generator)
    partial, step = checkpoint["partial"], checkpoint["position"]
    at = Position.start(checkpoint["epoch"] + 1, run.device)
    if step:
        at.step, at.seconds = step, partial["seconds"]
        if distributed.is_main():  # rank 0 carries the partial sums of all ranks; the others start from 0
            at.loss_sum = torch.tensor(partial["loss_sum"], dtype=torch.float32, device=run.device)
            at.wrong = torch.tensor(partial["wrong"], dtype=torch.long, device=run.device)
            at.seen = partial["seen"]
    return at


# ----------------------------------------------------------------------------- the whole run


def train(cfg: TrainConfig, overwrite: bool = False, echo: Callable[[str], None] = print,
          resume: bool = False) -> Path:
    """Train (or, with resume, continue) and write the run folder; returns its path."""
    started = time.time()
    run = build(cfg, overwrite, resume)
    say = echo if distributed.is_main() else (lambda text: None)
    if resume:
        run.folder = run.run_dir
        at = restore(run)
        if at.epoch > cfg.epochs:
            say(f"{run.run_dir} already finished its {cfg.epochs} epochs; nothing to resume")
            return run.run_dir if (run.run_dir / RUN_JSON).exists() else finish(run, started)
        say(f"resuming {run.run_dir} at epoch {at.epoch}, step {at.step}/{len(run.loader)}")
    else:
        run.folder = staging.start_folder(run.run_dir, overwrite) if distributed.is_main() else run.run_dir
        distributed.barrier()
        if distributed.is_main():
            atomic_write_text(run.folder / CONFIG, to_yaml(cfg))
        at = Position.start(1, run.device)
    say(f"training {cfg.model} on {cfg.dataset} ({len(run.train_split)} images, {run.train_split.num_classes} "
        f"classes) with policy {policy_label(cfg.policy, cfg.mix, cfg.jsd)} on {device_name(run.device)}"
        f"{f' x {distributed.world_size()} processes' if distributed.world_size() > 1 else ''} -> {run.run_dir}")
    stop = interrupts.StopSignals(run.device)
    try:
        with stop:
            for epoch in range(at.epoch, cfg.epochs + 1):
                run.rows.append(train_one_epoch(run, at, stop))
                save_epoch(run, epoch)
                if distributed.is_main():
                    run.folder = staging.promote(run.folder, run.run_dir)
                row = run.rows[-1]
                say(f"epoch {epoch:>3}/{cfg.epochs}  loss {row['train_loss']}  train err "
                    f"{float(row['train_error']):5.2f}%  test err {float(row['test_error']):5.2f}%  "
                    f"{float(row['images_per_s']):,.0f} img/s  {row['seconds']}s")
                if epoch < cfg.epochs and stop.requested(0, force=True):
                    raise interrupts.Interrupted(f"stopped by {stop.name} after epoch {epoch}; checkpoint saved; "
                                             f"continue with: robench train --resume {run.run_dir}")
                at = Position.start(epoch + 1, run.device)
    except BaseException as e:
        if not distributed.is_main():
            raise
        staged = not resume and run.folder != run.run_dir
        if not resume:
            staging.abandon(run.folder, run.run_dir)
        if isinstance(e, KeyboardInterrupt):  # a second Ctrl-C: say what was kept (typer would say nothing)
            raise interrupts.interrupted_at_once(run.run_dir, staged) from None
        if staged and isinstance(e, interrupts.Interrupted):
            raise interrupts.Interrupted(f"stopped by {stop.name} before the first epoch ended: the new run is "
                                     f"discarded and the old run in {run.run_dir} is kept", exit_code=130) from None
        raise
    return finish(run, started)


def finish(run: Training, started: float) -> Path:
    """run.json (rank 0), written last: its presence says the run is complete."""
    cfg, split = run.cfg, run.train_split
    if distributed.is_main():
        write_json(run.run_dir / RUN_JSON, {
            "name": cfg.name, "model": cfg.model, "policy": cfg.policy, "policy_params": cfg.policy_params,
            "mix": cfg.mix, "jsd": cfg.jsd, "label_smoothing": cfg.label_smoothing, "optimizer": cfg.optimizer,
            "teacher": cfg.teacher, "dataset": cfg.dataset, "preprocessing": split.preprocessing,
            "num_classes": split.num_classes, "train_images": len(split), "test_images": len(run.test_split),
            "seed": cfg.seed, "epochs": cfg.epochs, "parameters": sum(p.numel() for p in run.model.parameters()),
            "clean_error": round(float(run.rows[-1]["test_error"]), 4), "versions": versions(),
            "device": device_name(run.device), "processes": distributed.world_size(),
            "wall_time_s": round(time.time() - started, 2), "config": asdict(cfg),
        })
    distributed.barrier()
    return run.run_dir
