"""The `robench` command line: parses, resolves config, calls the verbs. No logic of its own.

The options of `train` and `eval` are generated from the fields of TrainConfig and EvalConfig
(robench.config), where each default and help text is written once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

try:  # typer >= 0.20 vendors click and exports the base of its errors; older typer uses click's
    from typer import TyperException as ClickError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import ClickException as ClickError

from robench.config import EvalConfig, ReportConfig, TrainConfig, field_help, field_type, parse_params, resolve
from robench.errors import RobenchError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Benchmark the corruption robustness of image classifiers: train, eval, report.",
)
data_app = typer.Typer(no_args_is_help=True, help="Download, generate and preview datasets and corruption sets.")
app.add_typer(data_app, name="data")

# Options shared by several commands, declared once.
DATA_DIR = typer.Option(None, help="Dataset cache. [default: $ROBENCH_DATA or ~/.cache/robench]")
DEVICE = typer.Option("auto", help="auto | cpu | cuda | cuda:N.")
SEED = typer.Option(0, help="Seed of the corruptions.")
FROST = typer.Option("auto", help=field_help(EvalConfig, "frost"))
PROTOCOL = typer.Option("auto", help=field_help(EvalConfig, "protocol"))
STORAGE = typer.Option(True, help=field_help(EvalConfig, "storage"))
CORRUPTION_SPEC = typer.Option("all", help="all | standard | extra | none | name,name,... (see robench list corruptions).")


def user_errors(command):
    """A RobenchError becomes one line on stderr and exit code 2 (the error contract); so does an OS
    error on a path the user gave (missing, a file where a folder is needed, no permission, disk
    full). Ctrl-C is one line and exit 130. Under torchrun only rank 0 prints it (every rank meets
    the same error)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RobenchError as e:
            _fail(str(e), getattr(e, "exit_code", 2))  # 75: interrupted and resumable (robench.train.interrupts)
        except KeyboardInterrupt:  # typer would turn it into exit 130 with nothing said
            _say("robench: interrupted by Ctrl-C; every file written so far is whole (writes are atomic)")
            raise typer.Exit(130) from None
        except OSError as e:
            where = f" {e.filename}" if e.filename else ""
            _fail(f"cannot use{where} ({e.strerror or e}); check that the path exists, is a folder where a folder "
                  f"is expected, and is writable")

    return wrapper


def _fail(message: str, exit_code: int = 2):
    _say(f"robench: error: {message}")
    raise typer.Exit(exit_code)


def _say(line: str) -> None:
    """One line on stderr, from rank 0 only: under torchrun every rank meets the same error."""
    if os.environ.get("RANK", "0") == "0":
        typer.echo(line, err=True)


def config_options(cls, skip: tuple[str, ...] = ()):
    """Decorator: the command also takes one option per field of the config dataclass `cls` (its
    help from the field, None meaning "not given", so YAML and defaults fill in), passed in **flags."""

    def decorate(command):
        own = [p for p in inspect.signature(command).parameters.values() if p.kind != p.VAR_KEYWORD]
        generated = []
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            kind, flag = field_type(cls, f.name), "--" + (f.metadata.get("flag") or f.name.replace("_", "-"))
            default = f.default if f.default is not dataclasses.MISSING else None
            help_text = f.metadata["help"]
            if default is not None and default is not False and "[default" not in help_text:
                help_text += f" [default: {default}]"
            if kind is dict:
                annotation, decls = Optional[List[str]], [flag]
            elif kind is bool:
                annotation, decls = Optional[bool], [f"{flag}/--no-{flag[2:]}"]
            else:
                annotation, decls = Optional[kind], [flag]
            generated.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                               default=typer.Option(None, *decls, help=help_text)))
        command.__signature__ = inspect.Signature(own + generated)
        return command

    return decorate


def parse_dict_flags(cls, flags: dict) -> dict:
    """`flags` with the repeatable KEY=VALUE lists parsed into dicts."""
    for f in dataclasses.fields(cls):
        if field_type(cls, f.name) is dict and flags.get(f.name) is not None:
            flags[f.name] = parse_params(flags[f.name], f.metadata["flag"]) or None
    return flags


def resolve_flags(cls, yaml_path, flags: dict):
    """The config from defaults < YAML < the given flags, KEY=VALUE lists parsed into dicts."""
    return resolve(cls, yaml_path, parse_dict_flags(cls, flags))


@app.command(help="""Train a classifier under an augmentation policy; writes results/<name>/.

Example: robench train --dataset cifar10 --model resnet18 --epochs 30 --name r18-standard

Offline example: robench train --dataset shapes10 --model small-cnn --epochs 3 --batch-size 256 --lr 0.05""")
@user_errors
@config_options(TrainConfig)
def train(
    config: Optional[Path] = typer.Option(None, help="YAML file of defaults (keys as below, e.g. recipes/*.yaml); explicit flags override it."),
    overwrite: bool = typer.Option(False, help="Replace an existing run folder of the same name (once the new "
                                               "run has finished its first epoch)."),
    resume: Optional[Path] = typer.Option(None, help="Continue this run folder from its last checkpoint (options "
                                                     "given must match its config, bar --device, --data-dir, "
                                                     "--checkpoint-every, --compile)."),
    seeds: Optional[str] = typer.Option(None, help="Train one run per seed, e.g. 0,1,2 or 0-4, named <name>-s<seed>."),
    **flags,
):
    from robench.train.seeds import train_runs

    train_runs(config, parse_dict_flags(TrainConfig, flags), resume=resume, seeds=seeds, overwrite=overwrite,
               echo=typer.echo)


def eval_command(run: List[str] = typer.Argument(..., help=field_help(EvalConfig, "run")), **flags):
    from robench.eval.loop import evaluate_run

    evaluate_run(resolve_flags(EvalConfig, None, {**flags, "run": run[0] if len(run) == 1 else run}), echo=typer.echo)


eval_command = config_options(EvalConfig, skip=("run",))(eval_command)
_EVAL_HELP = """Measure clean error and the error under every corruption and severity.

Example: robench eval results/r18-standard --corruptions all --severities 1-5

Your own model: robench eval timm:resnet18 --checkpoint r18.pth --dataset cifar10 --normalize 0.4914,0.4822,0.4465,0.2470,0.2435,0.2616

Ensemble: robench eval results/a results/b --ensemble a+b

Writes <run>/eval/<dataset>-<source>.csv, one row per cell (a model robench did not train: <out-dir>/<name>/)."""
app.command("eval", help=_EVAL_HELP)(user_errors(eval_command))
app.command("evaluate", help="Alias of eval. " + _EVAL_HELP)(user_errors(eval_command))


@app.command(help="""Leaderboards of every run under the given folders: seeds grouped, sorted by mCE.

Example: robench report results/ --baseline r18-standard --out board.md --out report.html --plots plots/

--out writes by suffix: .md .html .tex .json (the report) or .csv .parquet (every cell, the tidy table).""")
@user_errors
@config_options(ReportConfig)
def report(
    folders: List[Path] = typer.Argument(..., help="Results folders or run folders."),
    out: Optional[List[Path]] = typer.Option(None, help="Also write FILE (.md, .html, .tex, .json, .csv, .parquet); "
                                                        "repeatable."),
    **flags,
):
    from robench.report.leaderboard import write_report

    text, warnings = write_report(folders, out or [], resolve_flags(ReportConfig, None, flags))
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(text, nl=False)


@app.command(help="""Train and evaluate a grid of runs (recipes x seeds x models x any option) from GRID.yaml.

Example: robench sweep grid.yaml ; robench sweep --status grid.yaml ; robench sweep --slurm grid.yaml

Locally the runs go one after another (each on all local GPUs through torchrun, or one run per GPU
with --per-gpu); --slurm writes a SLURM job-array script instead. Finished runs and cells are
skipped and interrupted runs resumed, so re-running a sweep completes it. The grid file's format
is in the README ("Long runs, many GPUs, clusters").""")
@user_errors
def sweep(
    grid: Path = typer.Argument(..., help="The grid file (YAML)."),
    status: bool = typer.Option(False, "--status", help="Print each run's state (done, running, failed, missing) and stop."),
    slurm: bool = typer.Option(False, "--slurm", help="Write <out_dir>/<grid>.sbatch, a job array of one task per run, and stop."),
    sbatch: Optional[List[str]] = typer.Option(None, help="An #SBATCH option KEY=VALUE for --slurm, repeatable "
                                                          "(over the grid file's slurm: section), e.g. --sbatch time=24:00:00."),
    per_gpu: bool = typer.Option(False, "--per-gpu", help="One run per local GPU at a time instead of each run on all of them."),
    task: Optional[int] = typer.Option(None, help="Only the run with this index (what each SLURM array task runs)."),
):
    from robench import sweep as sweeping

    spec = sweeping.load_grid(grid)
    if status:
        typer.echo(sweeping.status_table(spec))
        return
    if slurm:
        path = sweeping.write_slurm(spec, sweeping.parse_sbatch(sbatch))
        typer.echo(f"wrote {path}: {len(spec.runs)} array tasks, logs in {spec.out_dir / 'logs'}; submit with: sbatch {path}")
        return
    code = sweeping.run_per_gpu(spec, typer.echo) if per_gpu else sweeping.run_local(spec, typer.echo, task)
    if code == 0 and task is None:
        typer.echo(sweeping.status_table(spec).splitlines()[-1])
    raise typer.Exit(code)


def _registries() -> dict:
    """What `robench list` can list: kind -> registry (imported only when listed)."""
    return {
        "datasets": lambda: __import__("robench.data", fromlist=["DATASETS"]).DATASETS,
        "models": lambda: __import__("robench.models", fromlist=["MODELS"]).MODELS,
        "optimizers": lambda: __import__("robench.train.optim", fromlist=["OPTIMIZERS"]).OPTIMIZERS,
        "policies": lambda: __import__("robench.augment", fromlist=["POLICIES"]).POLICIES,
        "mixers": lambda: __import__("robench.augment", fromlist=["MIXERS"]).MIXERS,
        "corruptions": lambda: __import__("robench.corruptions", fromlist=["FUNCTIONS"]).FUNCTIONS,
        "c-bar": lambda: __import__("robench.corruptions.cbar", fromlist=["BAR"]).BAR,
        "perturbations": lambda: __import__("robench.corruptions.perturbations", fromlist=["FUNCTIONS"]).FUNCTIONS,
    }


@app.command("list", help="""List the registries, with each entry's parameters and their defaults: datasets,
models, optimizers, policies, mixers, corruptions, c-bar (CIFAR-10-C-bar's), perturbations (CIFAR-10-P's).

Example: robench list policies""")
@user_errors
def list_(what: str = typer.Argument("all", help="One of: " + ", ".join(_registries()) + ", all.")):
    registries = _registries()
    if what != "all" and what not in registries:
        raise RobenchError(f"unknown list '{what}'; choose one of: {', '.join(registries)}, all")
    for kind in registries if what == "all" else (what,):
        typer.echo(f"{kind}:")
        for line in registries[kind]().describe():
            typer.echo(line)


@data_app.command("download", help="""Download and verify a dataset or an official corruption set into the data dir.

Examples: robench data download cifar10 ; robench data download cifar10-c""")
@user_errors
def data_download(
    name: str = typer.Argument(..., help="cifar10 | cifar100 | cifar10.1 | mnist | fashion-mnist | cifar10-c | "
                                         "cifar100-c | imagenet-c[:noise,blur,weather,digital,extra] | "
                                         "tiny-imagenet-c | cifar10-p | cifar100-p."),
    data_dir: Optional[str] = DATA_DIR,
):
    from robench.data import csets, load_split, psets
    from robench.data.download import data_dir as current_data_dir
    from robench.data.download import set_data_dir

    set_data_dir(data_dir)
    from robench.data import jpeg_csets

    for releases, download in ((csets.RELEASES, csets.download), (psets.RELEASES, psets.download)):
        if name in releases:
            typer.echo(f"{name} ready in {download(name)}")
            return
    release, _, parts = name.partition(":")  # imagenet-c:noise,blur fetches some of its five tars
    if release in jpeg_csets.RELEASES:
        folder = jpeg_csets.download(release, parts.split(",") if parts else None)
        typer.echo(f"{name} ready in {folder}")
        return
    if name not in ("cifar10", "cifar100", "cifar10.1", "mnist", "fashion-mnist"):
        raise RobenchError(f"unknown download '{name}'; choose one of: cifar10, cifar100, cifar10.1, mnist, "
                           f"fashion-mnist, {', '.join([*csets.RELEASES, *jpeg_csets.RELEASES, *psets.RELEASES])}")
    for train in (False,) if name == "cifar10.1" else (True, False):  # CIFAR-10.1 is a test set only
        load_split(name, train)
    typer.echo(f"{name} ready in {current_data_dir()}")


@data_app.command("generate", help="""Write a corruption set in the official layout with robench's own corruptions.

Example: robench data generate --dataset shapes10 --out shapes10-C

Writes the layout the protocol's official set is released in, drawn exactly as robench eval --source
generated draws it: for cifar10-c (and scaled) <out>/<corruption>.npy (uint8 (5N, H, W, 3),
severity-major) and labels.npy; for imagenet-c and tiny-imagenet-c
<out>/<corruption>/<severity>/<class>/<file>.JPEG (quality-85 JPEGs, their storage step; with
--no-storage the .npy layout of the images before it). Resumable: a finished file or folder is kept.""")
@user_errors
def data_generate(
    dataset: str = typer.Option(..., help="Any dataset robench can load (its test split is corrupted)."),
    out: Path = typer.Option(..., help="Output folder."),
    benchmark: str = typer.Option("c", help="c (the -C corruptions of --protocol) | c-bar (CIFAR-10-C-bar, the -C "
                                            "layout) | p (CIFAR-10-P: <perturbation>.npy uint8 (N, T, 32, 32, 3))."),
    corruptions: str = typer.Option("all", help="all | standard | extra | none | name,name,... (see robench list "
                                               "corruptions); for c-bar and p: all or their names."),
    protocol: str = PROTOCOL,
    storage: bool = STORAGE,
    seed: int = SEED,
    limit: Optional[int] = typer.Option(None, help="Only the first N test images."),
    device: str = DEVICE,
    frost: str = FROST,
    data_dir: Optional[str] = DATA_DIR,
):
    from robench.corruptions.frost_textures import resolve_frost
    from robench.corruptions.benchmarks import check_own_generator, check_size, parse_benchmark, parse_names
    from robench.corruptions.protocol import SEVERITIES, check_protocol_name
    from robench.data import csets, load_split, psets
    from robench.data.download import set_data_dir
    from robench.data.stream import ChunkedSplit
    from robench.eval.sources import first_images, resolve_protocol
    from robench.progress import progress_bar
    from robench.runtime.device import resolve_device

    set_data_dir(data_dir)
    if limit is not None and limit < 1:
        raise RobenchError(f"--limit must be at least 1, got {limit}")
    if out.exists() and not out.is_dir():
        raise RobenchError(f"--out {out} is a file; give a folder (new or holding an earlier C-set)")
    check_protocol_name(protocol)
    benchmark = parse_benchmark(benchmark)
    names = parse_names(benchmark, corruptions)
    device_ = resolve_device(device)
    test = load_split(dataset, False, limit=limit)
    n, labels = len(test), test.labels
    streamed = isinstance(test, ChunkedSplit)  # image folders: decoded a chunk at a time
    check_own_generator(benchmark, protocol, storage)
    if benchmark != "c":
        check_size(benchmark, *first_images(test, 1).shape[-2:], dataset)
        images = (test.read(0, n) if streamed else test.images).to(device_)
        steps = len(names) * (len(SEVERITIES) if benchmark == "c-bar" else 1)
        with progress_bar("generate", total=steps * n) as bar:
            if benchmark == "c-bar":
                csets.write_generated(images, labels, out, names, seed, on_cell=lambda c, s: bar.advance(n),
                                      benchmark="c-bar")
            else:
                psets.write_generated(images, out, names, seed, on_file=lambda name, count: bar.advance(n))
        typer.echo(f"wrote {dataset}-{benchmark} ({len(names)} {'perturbations' if benchmark == 'p' else 'corruptions'}"
                   f", {n} images) to {out}")
        return
    protocol_, step, _ = resolve_protocol(protocol, storage, tuple(first_images(test, 1).shape[-2:]), "generated",
                                          dataset, typer.echo)
    textures = resolve_frost(frost) if "frost" in names else frost
    with progress_bar("generate", total=len(names) * len(SEVERITIES) * n) as bar:
        on_cell = lambda name, severity: (bar.describe(f"{name} s{severity}"), bar.advance(n))  # noqa: E731
        if step == "jpeg85":
            from robench.data.jpeg_tree import write_jpeg_tree

            # each image keeps its file name; images without one are named by class and position
            names_of = list(test.classes) or [str(k) for k in range(test.num_classes)]
            files = getattr(test, "ids", None) or [f"{names_of[int(y)]}/{i:08d}.JPEG" for i, y in enumerate(labels)]
            chunk = test.read if streamed else (lambda a, b: test.images[a:b])
            write_jpeg_tree(chunk, files, out, names, seed, protocol_, device_, frost=textures, on_cell=on_cell)
        else:
            images = test.read(0, n) if streamed else test.images
            csets.write_generated(images.to(device_), labels, out, names, seed, frost=textures, protocol=protocol_,
                                  storage=storage, on_cell=on_cell)
    used = f" (frost: {textures} textures)" if "frost" in names else ""
    layout = "JPEG files (the released layout)" if step == "jpeg85" else ".npy files"
    typer.echo(f"wrote {len(names)} corruptions x {len(SEVERITIES)} severities x {n} images of {dataset} "
               f"as {layout}, protocol {protocol_}, to {out}{used}")


@data_app.command("preview", help="""Write a PNG grid of corruptions x severities for a few test images.

Example: robench data preview --dataset shapes10 --out preview.png --images 3""")
@user_errors
def data_preview(
    out: Path = typer.Option(..., help="The PNG to write."),
    dataset: str = typer.Option("shapes10", help="Any dataset robench can load."),
    images: int = typer.Option(2, help="How many test images per row."),
    corruptions: str = CORRUPTION_SPEC,
    protocol: str = PROTOCOL,
    seed: int = SEED,
    data_dir: Optional[str] = DATA_DIR,
):
    from robench.corruptions.preview import preview_grid, save_png
    from robench.corruptions.protocol import SEVERITIES, parse_corruptions
    from robench.data import load_split
    from robench.data.download import set_data_dir

    set_data_dir(data_dir)
    if images < 1:
        raise RobenchError(f"--images must be at least 1, got {images}")
    if out.suffix.lower() != ".png":
        raise RobenchError(f"--out must end in .png, got {out.name}")
    from robench.eval.sources import first_images, resolve_protocol

    test = first_images(load_split(dataset, False, limit=images), images)
    protocol_, _, _ = resolve_protocol(protocol, True, tuple(test.shape[-2:]), "generated", dataset, typer.echo)
    save_png(preview_grid(test, parse_corruptions(corruptions), SEVERITIES, seed=seed, protocol=protocol_), out)
    typer.echo(f"wrote {out}")


@app.command(help="""Train standard and AugMix+JSD small CNNs offline, evaluate both on all 19 x 5 generated
corruptions, and print the leaderboard (about 5 minutes on 2 CPU cores).

Example: robench demo ; robench demo --dataset fashion-mnist""")
@user_errors
def demo(
    dataset: str = typer.Option("shapes10", help="shapes10 (embedded) | fashion-mnist | mnist."),
    out_dir: str = typer.Option("results/demo", help="Where the two run folders and leaderboard go."),
    epochs: Optional[int] = typer.Option(None, help="Override the demo's epochs."),
    device: str = DEVICE,
    full: bool = typer.Option(False, "--full", help="Also evaluate CIFAR-10-C-bar and CIFAR-10-P (C-bar error, mFP "
                                                    "and mT5D in the leaderboard; about 5 more minutes on 2 "
                                                    "CPU cores)."),
):
    from robench.demo import demo as run_demo

    typer.echo(run_demo(dataset, out_dir, device, epochs, echo=typer.echo, full=full))


def main() -> None:
    """Console entry point: click usage errors also become one line (exit 2)."""
    try:
        result = app(standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("robench: interrupted", err=True)
        sys.exit(130)
    except ClickError as e:
        ctx = getattr(e, "ctx", None)
        command = ctx.command_path if ctx else "robench"
        typer.echo(f"robench: error: {e.format_message()} (see {command} --help)", err=True)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    sys.exit(result if isinstance(result, int) else 0)
