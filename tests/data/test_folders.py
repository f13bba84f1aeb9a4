"""robench/data/folders.py: the imagenet (foldered and flat), tiny-imagenet and folder:PATH datasets
on small trees of real JPEGs: labels, class order (torchvision's ImageFolder), image order, the
RobustBench subset, and each bad layout as one RobenchError line."""

import imagetrees
import pytest
import torch
from torchvision.datasets import ImageFolder

from robench.data import folders, load_split
from robench.data.stream import StreamedSplit
from robench.errors import RobenchError

CLASSES = imagetrees.wnids(4)


@pytest.fixture
def few_classes(monkeypatch):
    monkeypatch.setattr(folders, "IMAGENET_CLASSES", len(CLASSES))


@pytest.fixture(scope="module")
def labels():
    return imagetrees.imagenet_labels(10, CLASSES)


@pytest.fixture(scope="module")
def foldered(tmp_path_factory, labels):
    return imagetrees.imagenet_foldered(tmp_path_factory.mktemp("imagenet"), labels, size=(40, 30))


def test_foldered_imagenet_labels_are_sorted_wnid_indices_in_validation_id_order(foldered, labels, few_classes):
    split = load_split("imagenet", False, data_path=foldered)
    assert isinstance(split, StreamedSplit)
    assert split.classes == sorted(CLASSES) != CLASSES and split.num_classes == 4
    assert [i.split("/")[1] for i in split.ids] == [imagetrees.val_name(k) for k in range(1, 11)]
    assert split.labels.tolist() == [sorted(CLASSES).index(labels[k]) for k in range(1, 11)]
    # torchvision's ImageFolder (what timm/torchvision weights were evaluated with) agrees per file.
    reference = ImageFolder(str(foldered / "val"))
    assert reference.classes == split.classes
    truth = {p.rsplit("/", 1)[-1]: t for p, t in reference.samples}
    assert [truth[f.name] for f in split.files] == split.labels.tolist()


@pytest.mark.parametrize("label_file", ["val_labels.txt", "LOC_val_solution.csv"])
def test_flat_imagenet_gives_the_foldered_split(foldered, labels, tmp_path, label_file, few_classes):
    flat = imagetrees.imagenet_flat(tmp_path, labels, size=(40, 30), label_file=label_file)
    a, b = load_split("imagenet", False, data_path=foldered), load_split("imagenet", False, data_path=flat)
    assert a.ids == b.ids and torch.equal(a.labels, b.labels) and a.classes == b.classes
    assert torch.equal(a.read(0, 4), b.read(0, 4))
    assert len(load_split("imagenet", False, data_path=flat, limit=3)) == 3


def test_flat_imagenet_bad_labels(labels, tmp_path, few_classes):
    flat = imagetrees.imagenet_flat(tmp_path, labels, size=(20, 20))
    lines = (flat / "val_labels.txt").read_text().splitlines()
    (flat / "val_labels.txt").write_text("\n".join(lines[:-1]) + "\n")  # one image without a label
    with pytest.raises(RobenchError, match="1 images in .* have no label.*does not match"):
        load_split("imagenet", False, data_path=flat)
    (flat / "val_labels.txt").write_text("ILSVRC2012_val_00000001.JPEG dog\n")
    with pytest.raises(RobenchError, match="'dog' is not a WordNet id"):
        load_split("imagenet", False, data_path=flat)
    (flat / "val_labels.txt").unlink()
    with pytest.raises(RobenchError, match="flat ImageNet folder without labels"):
        load_split("imagenet", False, data_path=flat)


def test_devkit_ground_truth_needs_meta_mat(labels, tmp_path, few_classes):
    flat = imagetrees.imagenet_flat(tmp_path, labels, size=(20, 20), label_file="")
    (flat / folders.GROUND_TRUTH).write_text("".join(f"{k}\n" for k in range(1, 11)))
    with pytest.raises(RobenchError, match="needs the devkit's meta.mat"):
        load_split("imagenet", False, data_path=flat)


def test_imagenet_needs_its_1000_classes(foldered):
    with pytest.raises(RobenchError, match="holds 4 classes, ImageNet has 1000; use folder:"):
        load_split("imagenet", False, data_path=foldered)


def test_robustbench_5k_ids_are_packaged_in_order():
    ids = folders.subset_ids("robustbench-5k")
    assert len(ids) == len(set(ids)) == 5000
    assert ids[0] == "n09468604/ILSVRC2012_val_00015253.JPEG"  # RobustBench's file order, not sorted
    assert all(i.startswith("n") and "/ILSVRC2012_val_" in i for i in ids)


def test_subset_selects_in_published_order_and_a_missing_id_is_one_line(tmp_path, monkeypatch):
    ids = folders.subset_ids("robustbench-5k")[:5]
    wnids = sorted({i.split("/")[0] for i in ids} | {"n00000001"})
    monkeypatch.setattr(folders, "IMAGENET_CLASSES", len(wnids))
    for k, id_ in enumerate(ids + ["n00000001/ILSVRC2012_val_00000001.JPEG"]):
        imagetrees.write_jpeg(tmp_path / "val" / id_, k, (20, 20))
    monkeypatch.setattr(folders, "subset_ids", lambda name: ids)
    split = load_split("imagenet", False, data_path=tmp_path, subset="robustbench-5k")
    assert split.ids == ids and split.labels.tolist() == [wnids.index(i.split("/")[0]) for i in ids]
    (tmp_path / "val" / ids[3]).rename(tmp_path / "val" / ids[3].split("/")[0] / "ILSVRC2012_val_00099999.JPEG")
    with pytest.raises(RobenchError, match="1 images of --subset robustbench-5k are not in .*first: " + ids[3]):
        load_split("imagenet", False, data_path=tmp_path, subset="robustbench-5k")
    monkeypatch.undo()
    with pytest.raises(RobenchError, match="unknown subset 'x'"):
        folders.apply_subset(split, "x")


def test_tiny_imagenet_layout(tmp_path):
    classes = imagetrees.wnids(200)
    root, truth = imagetrees.tiny_imagenet(tmp_path / "tiny-imagenet-200", classes, 12)
    split = load_split("tiny-imagenet", False, data_path=root)
    assert split.classes == sorted(classes) and split.num_classes == 200
    assert split.labels.tolist() == [sorted(classes).index(w) for w in truth]
    assert split.ids[:2] == [f"{truth[0]}/val_0.JPEG", f"{truth[1]}/val_1.JPEG"]
    images = split.read(0, 12)
    assert images.shape == (12, 3, 64, 64)  # 64 px as stored, grey ones as RGB
    annotations = root / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text().replace("val_3.JPEG", "val_300.JPEG"))
    with pytest.raises(RobenchError, match="val_300.JPEG is not in .*does not match"):
        load_split("tiny-imagenet", False, data_path=root)


def test_folder_dataset_is_imagefolder_order(tmp_path):
    for k, (cls, name) in enumerate([("b", "2.jpg"), ("a", "z.png"), ("b", "1.jpg"), ("a", "sub/y.jpeg"),
                                     ("c", "x.JPEG")]):
        path = tmp_path / "tree" / cls / name
        if name.endswith("png"):
            path.parent.mkdir(parents=True, exist_ok=True)
            imagetrees.picture(k, 30, 20).save(path)
        else:
            imagetrees.write_jpeg(path, k, (30, 20))
    (tmp_path / "tree" / "c" / "notes.txt").write_text("not an image")
    split = load_split(f"folder:{tmp_path / 'tree'}", False)
    reference = ImageFolder(str(tmp_path / "tree"))
    assert split.classes == reference.classes == ["a", "b", "c"]
    assert [str(f) for f in split.files] == [p for p, _ in reference.samples]
    assert split.labels.tolist() == reference.targets
    assert split.read(0, 5).shape == (5, 3, 224, 224)  # Resize(256) + CenterCrop(224) by default


def test_bad_folders(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(RobenchError, match="class folder .*cls holds no images"):
        load_split(f"folder:{tmp_path / 'empty'}", False)
    (tmp_path / "flatfiles").mkdir()
    with pytest.raises(RobenchError, match="has no class folders"):
        load_split(f"folder:{tmp_path / 'flatfiles'}", False)
    with pytest.raises(RobenchError, match="not found"):
        load_split(f"folder:{tmp_path / 'nowhere'}", False)
    with pytest.raises(RobenchError, match="no images found in"):
        load_split("imagenet", False, data_path=tmp_path / "flatfiles")
    with pytest.raises(RobenchError, match="ImageNet validation set not found"):
        load_split("imagenet", False)
    with pytest.raises(RobenchError, match="is an evaluation dataset"):
        load_split("imagenet", True)
    with pytest.raises(RobenchError, match="Tiny-ImageNet .* not found"):
        load_split("tiny-imagenet", True)
    (tmp_path / "evalonly" / "val" / "a").mkdir(parents=True)
    with pytest.raises(RobenchError, match="needs a train/<class>/ folder"):
        load_split(f"folder:{tmp_path / 'evalonly' / 'val'}", True)
    (tmp_path / "evalonly" / "train").mkdir()
    with pytest.raises(RobenchError, match="holds no images"):
        load_split(f"folder:{tmp_path / 'evalonly'}", False)
    with pytest.raises(RobenchError, match="does not apply to tiny-imagenet"):
        load_split("tiny-imagenet", False, subset="robustbench-5k")
