"""Image-folder datasets as StreamedSplits: `imagenet`, `tiny-imagenet`, `folder:<path>`.

Labels and class order are what pretrained models expect: the index in the sorted class-folder
names (torchvision's ImageFolder order; for ImageNet the sorted wnids, which is also timm's and
torchvision's weights' order). Image order is each dataset's own: ImageNet's by validation id
(ILSVRC2012_val_00000001 first) in both layouts, so the flat and the foldered copy give the same
chunks; Tiny-ImageNet's as val_annotations.txt lists them; a folder's as ImageFolder walks it.

Where the files are: `path=` (the CLI's --data-path), else `<data dir>/imagenet` or
`<data dir>/tiny-imagenet-200`. Each layout problem (no images, a label file that does not match
the images, an unknown class) is one RobenchError line naming the file.
"""

from __future__ import annotations

import csv
import os
from importlib import resources
from pathlib import Path

import torch

from robench.data.download import data_dir
from robench.data.stream import StreamedSplit
from robench.errors import RobenchError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".webp")
IMAGENET_CLASSES = 1000
TINY_CLASSES = 200
# The devkit's ground truth: line k is the 1-based ILSVRC2012_ID of ILSVRC2012_val_<k>.JPEG.
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
# Flat-layout label files accepted without scipy: Kaggle's LOC_val_solution.csv (ImageId,
# PredictionString starting with the wnid) and val_labels.txt ("<file name> <wnid>" per line).
LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt")
SUBSETS = {"all": None, "robustbench-5k": "robustbench_5k.txt"}


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def _split(files: list[Path], ids: list[str], labels: list[int], classes: list[str], name: str,
           **options) -> StreamedSplit:
    if not files:
        raise RobenchError(f"no images (*.JPEG, *.jpg, *.png, *.webp) found in {name}; check the path")
    stream = {k: options[k] for k in ("preprocess", "decode", "workers", "cache_dir") if options.get(k) is not None}
    return StreamedSplit(files, ids, torch.tensor(labels, dtype=torch.int64), classes, name=name, **stream)


def _root(path: str | os.PathLike | None, default: str, what: str) -> Path:
    root = Path(path).expanduser() if path else data_dir() / default
    if not root.is_dir():
        raise RobenchError(f"{what} not found at {root}; put it there or pass its folder with --data-path")
    return root


# ---------------------------------------------------------------------- folder:<path>


def image_folder(root: Path, name: str | None = None, **options) -> StreamedSplit:
    """Any class-per-folder tree, as torchvision's ImageFolder reads it: classes are the sorted
    sub-folder names, files each class folder's sorted walk (sub-folders included)."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise RobenchError(f"{root} has no class folders (expected <class>/<image> files)")
    files, ids, labels = [], [], []
    for label, cls in enumerate(classes):
        before = len(files)
        for folder, _dirs, names in sorted(os.walk(root / cls, followlinks=True)):
            for file in sorted(names):
                if _is_image(file):
                    path = Path(folder) / file
                    files.append(path)
                    ids.append(path.relative_to(root).as_posix())
                    labels.append(label)
        if len(files) == before:
            raise RobenchError(f"class folder {root / cls} holds no images; remove it or add its images")
    return _split(files, ids, labels, classes, name or str(root), **options)


# ---------------------------------------------------------------------- imagenet


def _val_folder(root: Path) -> Path:
    return root / "val" if (root / "val").is_dir() else root


def imagenet(path=None, subset: str | None = None, **options) -> StreamedSplit:
    """ImageNet's validation set: `val/<wnid>/*.JPEG`, or flat `val/ILSVRC2012_val_*.JPEG` with a
    label file beside it (or in the folder above)."""
    root = _root(path, "imagenet", "the ImageNet validation set")
    val = _val_folder(root)
    if any(e.is_dir() and e.name.startswith("n") for e in os.scandir(val)):
        split = image_folder(val, name=str(val), **options)
    else:
        split = _flat_imagenet(val, root, **options)
    order = sorted(range(len(split)), key=lambda k: split.ids[k].rsplit("/", 1)[-1])
    split = split.select(order)
    if len(split.classes) != IMAGENET_CLASSES:
        raise RobenchError(f"{val} holds {len(split.classes)} classes, ImageNet has {IMAGENET_CLASSES}; "
                           f"use folder:{val} for a part of it")
    return apply_subset(split, subset)


def _flat_imagenet(val: Path, root: Path, **options) -> StreamedSplit:
    names = sorted(e.name for e in os.scandir(val) if e.is_file() and _is_image(e.name))
    if not names:
        raise RobenchError(f"no images found in {val} (expected <wnid>/*.JPEG or ILSVRC2012_val_*.JPEG)")
    wnid_of = _flat_labels(val, root)
    unlabelled = [n for n in names if Path(n).stem not in wnid_of]
    if unlabelled:
        raise RobenchError(f"{len(unlabelled)} images in {val} have no label in its label file (first: "
                           f"{unlabelled[0]}); the label file does not match the images")
    classes = sorted(set(wnid_of.values()))
    index = {c: k for k, c in enumerate(classes)}
    ids = [f"{wnid_of[Path(n).stem]}/{n}" for n in names]
    labels = [index[wnid_of[Path(n).stem]] for n in names]
    return _split([val / n for n in names], ids, labels, classes, str(val), **options)


def _flat_labels(val: Path, root: Path) -> dict[str, str]:
    """{image stem: wnid} from the first label file found beside the images or above them."""
    for folder in dict.fromkeys((val, root, val.parent)):
        if (folder / "LOC_val_solution.csv").exists():
            return _loc_solution(folder / "LOC_val_solution.csv")
        if (folder / "val_labels.txt").exists():
            return _pairs(folder / "val_labels.txt")
        for gt in (folder / GROUND_TRUTH, folder / "data" / GROUND_TRUTH):
            if gt.exists():
                return _devkit(gt)
    raise RobenchError(f"{val} is a flat ImageNet folder without labels: put {GROUND_TRUTH} (with the devkit's "
                       f"meta.mat), {' or '.join(LABEL_FILES)} beside it, or sort it into val/<wnid>/ folders")


def _wnid(value: str, file: Path, line: int) -> str:
    if not (len(value) == 9 and value[0] == "n" and value[1:].isdigit()):
        raise RobenchError(f"{file} line {line}: '{value}' is not a WordNet id (n + 8 digits); not an ImageNet label file")
    return value


def _loc_solution(file: Path) -> dict[str, str]:
    out = {}
    with open(file, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise RobenchError(f"{file} has no 'ImageId,PredictionString' header; not Kaggle's LOC_val_solution.csv")
        for line, row in enumerate(rows, 2):
            if len(row) < 2 or not row[1].split():
                raise RobenchError(f"{file} line {line}: expected ImageId,PredictionString")
            out[Path(row[0].strip()).stem] = _wnid(row[1].split()[0], file, line)
    return out


def _pairs(file: Path) -> dict[str, str]:
    out = {}
    for line, text in enumerate(file.read_text().splitlines(), 1):
        if text.strip():
            parts = text.split()
            if len(parts) < 2:
                raise RobenchError(f"{file} line {line}: expected '<file name> <wnid>'")
            out[Path(parts[0]).stem] = _wnid(parts[1], file, line)
    return out


def _devkit(gt: Path) -> dict[str, str]:
    """The devkit's ground truth (ILSVRC2012_IDs) mapped to wnids through its meta.mat (needs scipy)."""
    meta = next((m for m in (gt.parent / "meta.mat", gt.parent.parent / "data" / "meta.mat") if m.exists()), None)
    if meta is None:
        raise RobenchError(f"{gt} needs the devkit's meta.mat beside it (ILSVRC2012_ID -> wnid)")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise RobenchError(f"reading {meta} needs scipy (pip install scipy); or put {' or '.join(LABEL_FILES)} "
                           f"beside the images") from None
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    wnid_of_id = {int(s[0]): str(s[1]) for s in synsets if int(s[4]) == 0}  # leaves: the 1000 classes
    out = {}
    for k, text in enumerate(gt.read_text().split(), 1):
        if int(text) not in wnid_of_id:
            raise RobenchError(f"{gt} line {k}: ILSVRC2012_ID {text} is not one of meta.mat's classes")
        out[f"ILSVRC2012_val_{k:08d}"] = wnid_of_id[int(text)]
    return out


# ---------------------------------------------------------------------- subsets


def subset_ids(subset: str) -> list[str]:
    """The ids of a fixed subset, in its published order (robench/data/subsets/)."""
    if subset not in SUBSETS:
        raise RobenchError(f"unknown subset '{subset}'; choose one of: {', '.join(SUBSETS)}")
    text = resources.files("robench.data").joinpath("subsets", SUBSETS[subset]).read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def apply_subset(split: StreamedSplit, subset: str | None) -> StreamedSplit:
    """RobustBench's 5,000 validation images, in the order of its id file (as its loader reads
    them): each id is `<wnid>/ILSVRC2012_val_<k>.JPEG`, matched by file name and checked by class."""
    if subset in (None, "all"):
        return split
    ids = subset_ids(subset)
    return split.select_ids(ids, f"--subset {subset}")


# ---------------------------------------------------------------------- tiny-imagenet


def tiny_imagenet(path=None, **options) -> StreamedSplit:
    """Tiny-ImageNet's validation set: `val/images/*.JPEG`, `val/val_annotations.txt` (file, wnid,
    box) and `wnids.txt`; 200 classes in sorted-wnid order (ImageFolder's on its train folder and
    on Tiny-ImageNet-C), 64 px as stored."""
    root = _root(path, "tiny-imagenet-200", "Tiny-ImageNet (tiny-imagenet-200)")
    wnids_file, annotations, images = root / "wnids.txt", root / "val" / "val_annotations.txt", root / "val" / "images"
    for needed in (wnids_file, annotations, images):
        if not needed.exists():
            raise RobenchError(f"{needed} is missing; {root} is not a Tiny-ImageNet folder (tiny-imagenet-200)")
    classes = sorted(set(wnids_file.read_text().split()))
    if len(classes) != TINY_CLASSES:
        raise RobenchError(f"{wnids_file} lists {len(classes)} classes, Tiny-ImageNet has {TINY_CLASSES}")
    index = {c: k for k, c in enumerate(classes)}
    present = {e.name for e in os.scandir(images) if _is_image(e.name)}
    files, ids, labels = [], [], []
    for line, text in enumerate(annotations.read_text().splitlines(), 1):
        if not text.strip():
            continue
        parts = text.split("\t")
        if len(parts) < 2 or parts[1] not in index:
            raise RobenchError(f"{annotations} line {line}: expected '<file>\\t<wnid>...' with a wnid of {wnids_file.name}")
        if parts[0] not in present:
            raise RobenchError(f"{annotations} line {line}: {parts[0]} is not in {images}; the label file does "
                               f"not match the images")
        present.discard(parts[0])
        files.append(images / parts[0])
        ids.append(f"{parts[1]}/{parts[0]}")
        labels.append(index[parts[1]])
    if present:
        raise RobenchError(f"{len(present)} images in {images} have no line in {annotations.name} (first: "
                           f"{sorted(present)[0]}); the label file does not match the images")
    options["preprocess"] = options.get("preprocess") or "none"
    return _split(files, ids, labels, classes, str(root / "val"), **options)


# ---------------------------------------------------------------------- the registry's loader


def load(name: str, train: bool, data_path=None, subset: str | None = None, preprocess: str | None = None,
         decode: str | None = None, workers: int | None = None, cache_dir=None, **_options) -> StreamedSplit:
    options = dict(preprocess=preprocess, decode=decode, workers=workers, cache_dir=cache_dir)
    if train:
        return _train_split(name, data_path, options)
    if subset not in (None, "all") and name != "imagenet":
        raise RobenchError(f"--subset {subset} selects ImageNet validation images; it does not apply to {name}")
    if name == "imagenet":
        return imagenet(data_path, subset, **options)
    if name == "tiny-imagenet":
        return tiny_imagenet(data_path, **options)
    folder = _folder(name)
    if (folder / "train").is_dir():  # a tree with its own splits: evaluate on val/ (or test/), as stored
        folder = next((folder / s for s in ("val", "test") if (folder / s).is_dir()), None)
        if folder is None:
            raise RobenchError(f"{_folder(name)} has a train/ folder but no val/ or test/ beside it to evaluate on")
        options["preprocess"] = options.get("preprocess") or "none"
    return image_folder(folder, name=str(folder), **options)


def _folder(name: str) -> Path:
    folder = Path(name[len("folder:"):]).expanduser()
    if not folder.is_dir():
        raise RobenchError(f"folder {folder} not found; folder:PATH takes a class-per-folder tree")
    return folder


def _train_split(name: str, data_path, options: dict):
    """A training split of image files, decoded once into memory as the trainer wants it (same-size
    images, as stored: Tiny-ImageNet's train/<wnid>/images/, or folder:PATH's train/<class>/)."""
    if name == "imagenet":
        raise RobenchError("imagenet is an evaluation dataset here (its validation set streams from files); train "
                           "on it elsewhere and evaluate with robench eval")
    if name == "tiny-imagenet":
        root = _root(data_path, "tiny-imagenet-200", "Tiny-ImageNet (tiny-imagenet-200)") / "train"
    else:
        root = _folder(name) / "train"
    if not root.is_dir():
        raise RobenchError(f"{root} is missing: training on image files needs a train/<class>/ folder beside the "
                           f"evaluation images")
    return image_folder(root, name=str(root), **{**options, "preprocess": options.get("preprocess") or "none"}).in_memory()
