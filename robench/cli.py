"""The `robench` command line: parses, resolves config, calls the verbs. No logic of its own."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

try:  # typer >= 0.20 vendors click privately; older releases depend on click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions

from robench.errors import RobenchError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Benchmark the corruption robustness of image classifiers: train, eval, report.",
)
data_app = typer.Typer(no_args_is_help=True, help="Download, generate and preview datasets and corruption sets.")
app.add_typer(data_app, name="data")


def user_errors(command):
    """A RobenchError becomes one line on stderr and exit code 2 (the error contract)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RobenchError as e:
            typer.echo(f"robench: error: {e}", err=True)
            raise typer.Exit(2)

    return wrapper


@app.command(help="""Train a classifier under an augmentation policy; writes results/<name>/.

Example: robench train --dataset cifar10 --model resnet18 --epochs 30 --name r18-standard

Offline example: robench train --dataset shapes10 --model small-cnn --epochs 3 --batch-size 256 --lr 0.05""")
@user_errors
def train(
    config: Optional[Path] = typer.Option(None, help="YAML file of defaults (keys as below, e.g. recipes/*.yaml); explicit flags override it."),
    dataset: Optional[str] = typer.Option(None, help="cifar10 | cifar100 | shapes10 | fashion-mnist | mnist | hf:<repo-id> (see robench list datasets). [default: cifar10]"),
    model: Optional[str] = typer.Option(None, help="resnet18 | wrn-40-2 | small-cnn (see robench list models). [default: resnet18]"),
    epochs: Optional[int] = typer.Option(None, help="Training epochs. [default: 30]"),
    batch_size: Optional[int] = typer.Option(None, help="Images per step. [default: 128]"),
    optimizer: Optional[str] = typer.Option(None, help="sgd (Nesterov 0.9) | adamw | adabound. [default: sgd]"),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate, cosine-annealed per batch. [default: 0.1 for sgd, 1e-3 otherwise]"),
    min_lr: Optional[float] = typer.Option(None, help="Learning rate at the end of the cosine. [default: 0]"),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay. [default: 5e-4]"),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing epsilon, e.g. 0.1. [default: 0]"),
    policy: Optional[str] = typer.Option(None, help="Augmentation policy: none | standard | simple | cutout | randaugment | autoaugment | trivialaugment | augmix. [default: standard]"),
    policy_param: Optional[List[str]] = typer.Option(None, help="A policy parameter KEY=VALUE, repeatable, e.g. --policy-param magnitude=9."),
    mix: Optional[str] = typer.Option(None, help="Batch mixer: none | mixup | cutmix | ricap. [default: none]"),
    mix_param: Optional[List[str]] = typer.Option(None, help="A mixer parameter KEY=VALUE, repeatable, e.g. --mix-param alpha=1.0."),
    jsd: Optional[bool] = typer.Option(None, "--jsd/--no-jsd", help="AugMix's Jensen-Shannon consistency loss (needs --policy augmix)."),
    jsd_lambda: Optional[float] = typer.Option(None, help="Weight of the JSD term. [default: 12]"),
    teacher: Optional[str] = typer.Option(None, help="Distil from this run folder or checkpoint.pt."),
    kd_temperature: Optional[float] = typer.Option(None, help="Distillation temperature T. [default: 4]"),
    kd_alpha: Optional[float] = typer.Option(None, help="Weight of the distillation term. [default: 0.9]"),
    seed: Optional[int] = typer.Option(None, help="Random seed. [default: 0]"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N. [default: auto]"),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    name: Optional[str] = typer.Option(None, help="Run folder name. [default: <model>-<policy>-<dataset>-s<seed>]"),
    out_dir: Optional[str] = typer.Option(None, help="Where run folders go. [default: results]"),
    data_dir: Optional[str] = typer.Option(None, help="Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]"),
    train_limit: Optional[int] = typer.Option(None, help="Use only the first N training images."),
    test_limit: Optional[int] = typer.Option(None, help="Use only the first N test images."),
    image_column: Optional[str] = typer.Option(None, help="hf: datasets: the image column (detected if omitted)."),
    label_column: Optional[str] = typer.Option(None, help="hf: datasets: the label column (detected if omitted)."),
    image_size: Optional[int] = typer.Option(None, help="hf: datasets: resize images to this square size."),
    overwrite: bool = typer.Option(False, help="Replace an existing run folder of the same name."),
):
    from robench.config import TrainConfig, parse_params, resolve
    from robench.train import train as run_training

    flags = {k: v for k, v in locals().items() if k not in ("config", "overwrite", "policy_param", "mix_param", "parse_params", "resolve", "TrainConfig", "run_training")}
    if policy_param:
        flags["policy_params"] = parse_params(policy_param, "policy-param")
    if mix_param:
        flags["mix_params"] = parse_params(mix_param, "mix-param")
    cfg = resolve(TrainConfig, config, flags)
    run_dir = run_training(cfg, overwrite=overwrite, echo=typer.echo)
    typer.echo(f"done: {run_dir}  (next: robench eval {run_dir})")


def _evaluate(
    run: Path = typer.Argument(..., help="A run folder written by robench train."),
    corruptions: str = typer.Option("all", help="all | standard | extra | none | name,name,... (see robench list corruptions)."),
    severities: str = typer.Option("1-5", help="1-5 | 3 | 1,5 | 2-3,5."),
    source: str = typer.Option("auto", help="official (released .npy files) | generated (robench's engine) | auto (official when present)."),
    batch_size: int = typer.Option(1000, help="Images per forward pass."),
    seed: int = typer.Option(0, help="Seed of the generated corruptions."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    dataset: Optional[str] = typer.Option(None, help="Evaluate on this dataset instead of the run's."),
    data_dir: Optional[str] = typer.Option(None, help="Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]"),
    c_dir: Optional[str] = typer.Option(None, help="Folder holding the official <corruption>.npy files. [default: <data dir>/CIFAR-10-C]"),
    limit: Optional[int] = typer.Option(None, help="Only the first N test images. [default: the run's --test-limit, if any]"),
):
    from robench.evaluate import EvalConfig, evaluate

    if limit is not None and limit < 1:
        raise RobenchError(f"--limit must be at least 1, got {limit}")
    evaluate(EvalConfig(str(run), corruptions, severities, source, batch_size, seed, device, dataset, data_dir,
                        c_dir, limit), echo=typer.echo)


_EVAL_HELP = """Measure clean error and the error under every corruption and severity.

Example: robench eval results/r18-standard --corruptions all --severities 1-5

Writes <run>/eval/<dataset>-<source>.csv, one row per cell."""
app.command("eval", help=_EVAL_HELP)(user_errors(_evaluate))
app.command("evaluate", help="Alias of eval. " + _EVAL_HELP)(user_errors(_evaluate))


@app.command(help="""Leaderboard of every evaluated run under the given folders, sorted by mCE.

Example: robench report results/ --baseline r18-standard --out leaderboard.md""")
@user_errors
def report(
    folders: List[Path] = typer.Argument(..., help="Results folders or run folders."),
    baseline: Optional[str] = typer.Option(None, help="Run name for normalised and relative mCE columns."),
    out: Optional[Path] = typer.Option(None, help="Also write the leaderboard to FILE.md or FILE.csv."),
    plot: Optional[Path] = typer.Option(None, help="Also plot error per severity to FILE.png (needs matplotlib)."),
):
    from robench import report as reporting

    entries = reporting.collect(folders)
    text = reporting.render(entries, baseline)
    if out:
        reporting.write_outputs(entries, out, baseline)
    if plot:
        reporting.plot(entries, plot)
    typer.echo(text)


LISTS = ("datasets", "models", "policies", "mixers", "corruptions", "optimizers")


@app.command("list", help="""List the registries: datasets, models, policies, mixers, corruptions, optimizers.

Example: robench list corruptions""")
@user_errors
def list_(what: str = typer.Argument("all", help="One of: " + ", ".join(LISTS) + ", all.")):
    if what != "all" and what not in LISTS:
        raise RobenchError(f"unknown list '{what}'; choose one of: {', '.join(LISTS)}, all")
    for kind in LISTS if what == "all" else (what,):
        typer.echo(f"{kind}:")
        for name, description in _registry(kind):
            typer.echo(f"  {name:<18} {description}")


def _registry(kind: str) -> list[tuple[str, str]]:
    if kind == "datasets":
        from robench.data import DATASETS

        return [(n, i.description) for n, i in DATASETS.items()]
    if kind == "models":
        from robench.models import MODELS

        return [(n, d) for n, (_, d) in MODELS.items()]
    if kind == "optimizers":
        from robench.optim import OPTIMIZERS

        return [(n, d) for n, (_, _, d) in OPTIMIZERS.items()]
    if kind == "corruptions":
        from robench.corruptions import CORRUPTIONS, STANDARD

        return [(n, "standard" if n in STANDARD else "extra") for n in CORRUPTIONS]
    from robench import augment

    return list((augment.POLICIES if kind == "policies" else augment.MIXERS).items())


@data_app.command("download", help="""Download and verify a dataset or an official corruption set into the data dir.

Examples: robench data download cifar10 ; robench data download cifar10-c""")
@user_errors
def data_download(
    name: str = typer.Argument(..., help="cifar10 | cifar100 | mnist | fashion-mnist | cifar10-c | cifar100-c."),
    data_dir: Optional[str] = typer.Option(None, help="Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]"),
):
    from robench.data import csets, load_split
    from robench.data.download import data_dir as current_data_dir, set_data_dir

    set_data_dir(data_dir)
    if name in csets.RELEASES:
        folder = csets.download(name)
        typer.echo(f"{name} ready in {folder}")
        return
    if name not in ("cifar10", "cifar100", "mnist", "fashion-mnist"):
        raise RobenchError(f"unknown download '{name}'; choose one of: cifar10, cifar100, mnist, fashion-mnist, "
                           f"{', '.join(csets.RELEASES)}")
    for train in (True, False):
        load_split(name, train)
    typer.echo(f"{name} ready in {current_data_dir()}")


@data_app.command("generate", help="""Write a corruption set in the official layout with robench's own corruptions.

Example: robench data generate --dataset shapes10 --out shapes10-C

Writes <out>/<corruption>.npy (uint8 (5N, H, W, 3), severity-major) and labels.npy, drawn exactly as
robench eval --source generated draws them.""")
@user_errors
def data_generate(
    dataset: str = typer.Option(..., help="Any dataset robench can load (its test split is corrupted)."),
    out: Path = typer.Option(..., help="Output folder."),
    corruptions: str = typer.Option("all", help="all | standard | extra | name,name,..."),
    seed: int = typer.Option(0, help="Seed of the corruptions."),
    limit: Optional[int] = typer.Option(None, help="Only the first N test images."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
    data_dir: Optional[str] = typer.Option(None, help="Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]"),
):
    from robench.data import csets, load_split
    from robench.data.download import set_data_dir
    from robench.evaluate import parse_corruptions
    from robench.progress import progress_bar
    from robench.runs import resolve_device

    set_data_dir(data_dir)
    names = parse_corruptions(corruptions)
    device_ = resolve_device(device)
    test = load_split(dataset, False, limit=limit)
    images, labels = test.images[:limit], test.labels[:limit]
    with progress_bar("generate", total=len(names) * 5 * len(images)) as bar:
        csets.write_generated(images.to(device_), labels, out, names, seed,
                              on_cell=lambda name, severity: (bar.describe(f"{name} s{severity}"), bar.advance(len(images))))
    typer.echo(f"wrote {len(names)} corruptions x 5 severities x {len(images)} images of {dataset} to {out}")


@data_app.command("preview", help="""Write a PNG grid of corruptions x severities for a few test images.

Example: robench data preview --dataset shapes10 --out preview.png --images 3""")
@user_errors
def data_preview(
    out: Path = typer.Option(..., help="The PNG to write."),
    dataset: str = typer.Option("shapes10", help="Any dataset robench can load."),
    images: int = typer.Option(2, help="How many test images per row."),
    corruptions: str = typer.Option("all", help="all | standard | extra | name,name,..."),
    seed: int = typer.Option(0, help="Seed of the corruptions."),
    data_dir: Optional[str] = typer.Option(None, help="Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]"),
):
    from robench.corruptions.preview import preview_grid, save_png
    from robench.data import load_split
    from robench.data.download import set_data_dir
    from robench.evaluate import parse_corruptions

    set_data_dir(data_dir)
    if images < 1:
        raise RobenchError(f"--images must be at least 1, got {images}")
    if out.suffix.lower() != ".png":
        raise RobenchError(f"--out must end in .png, got {out.name}")
    test = load_split(dataset, False, limit=images)
    save_png(preview_grid(test.images[:images], parse_corruptions(corruptions), [1, 2, 3, 4, 5], seed=seed), out)
    typer.echo(f"wrote {out}")


@app.command(help="""Train standard and AugMix+JSD small CNNs offline, evaluate both on all 19 x 5 generated
corruptions, and print the leaderboard (about 5 minutes on 2 CPU cores).

Example: robench demo ; robench demo --dataset fashion-mnist""")
@user_errors
def demo(
    dataset: str = typer.Option("shapes10", help="shapes10 (embedded) | fashion-mnist | mnist."),
    out_dir: str = typer.Option("results/demo", help="Where the two run folders and leaderboard go."),
    epochs: Optional[int] = typer.Option(None, help="Override the demo's epochs."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N."),
):
    from robench.demo import demo as run_demo

    typer.echo(run_demo(dataset, out_dir, device, epochs, echo=typer.echo))


def main() -> None:
    """Console entry point: click usage errors also become one line (exit 2)."""
    try:
        result = app(standalone_mode=False)
    except click_exceptions.UsageError as e:
        command = e.ctx.command_path if e.ctx else "robench"
        typer.echo(f"robench: error: {e.format_message()} (see {command} --help)", err=True)
        sys.exit(2)
    except click_exceptions.Abort:
        typer.echo("robench: interrupted", err=True)
        sys.exit(130)
    except click_exceptions.Exit as e:
        sys.exit(e.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
