"""Any Hugging Face image dataset, `hf:<repo-id>`, through the optional `datasets` library.

Images are decoded once, converted to RGB, resized (bilinear, antialiased) to a fixed square size
when they are not all that size already, and kept as uint8. A local folder (e.g. one holding
parquet files) works too: `hf:/path/to/folder`.
"""

from __future__ import annotations

import numpy as np
import torch

from robench.data.registry import Split
from robench.errors import RobenchError

IMAGE_COLUMNS = ("img", "image", "images", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label", "class", "target")
TEST_SPLITS = ("test", "validation", "valid", "val")


def _import_datasets():
    try:
        import datasets
    except ImportError:
        raise RobenchError("hf: datasets need the optional extra: pip install 'robench[hf]'") from None
    return datasets


def _pick(columns, wanted: str | None, candidates, what: str, dataset: str) -> str:
    if wanted:
        if wanted not in columns:
            raise RobenchError(f"{dataset} has no column '{wanted}'; its columns are: {', '.join(columns)}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise RobenchError(
        f"cannot find the {what} column of {dataset} (columns: {', '.join(columns)}); "
        f"name it with --{what}-column"
    )


def _split_name(splits, train: bool, dataset: str) -> str:
    if train:
        if "train" not in splits:
            raise RobenchError(f"{dataset} has no 'train' split (it has: {', '.join(splits)})")
        return "train"
    for name in TEST_SPLITS:
        if name in splits:
            return name
    raise RobenchError(f"{dataset} has no test split (it has: {', '.join(splits)})")


def _to_uint8(image, size: int | None) -> np.ndarray:
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load(
    name: str,
    train: bool,
    image_column: str | None = None,
    label_column: str | None = None,
    image_size: int | None = None,
    **_options,
) -> Split:
    datasets = _import_datasets()
    repo = name[len("hf:"):]
    try:
        dataset_dict = datasets.load_dataset(repo)
    except Exception as e:  # the library raises many types for missing/offline datasets
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RobenchError(f"cannot load Hugging Face dataset '{repo}': {message}") from None
    split = dataset_dict[_split_name(list(dataset_dict.keys()), train, name)]
    columns = list(split.column_names)
    image_col = _pick(columns, image_column, IMAGE_COLUMNS, "image", name)
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", name)
    images_raw = split[image_col]
    if image_size is None:
        sizes = {getattr(im, "size", None) for im in images_raw[:256]}
        # One common square size is kept as is; anything else is resized to 32x32.
        only = next(iter(sizes)) if len(sizes) == 1 else None
        image_size = only[0] if only and only[0] == only[1] else 32
    images = np.stack([_to_uint8(im, image_size) for im in images_raw]).transpose(0, 3, 1, 2)
    labels = torch.tensor(split[label_col], dtype=torch.int64)
    feature = split.features[label_col]
    classes = list(getattr(feature, "names", []) or [])
    num_classes = len(classes) or int(labels.max()) + 1
    return Split(
        torch.from_numpy(np.ascontiguousarray(images)), labels, num_classes, classes,
        preprocessing=f"decoded to RGB uint8, {image_size}x{image_size}",
    )
