"""robench/eval/sources.py with streamed test sets: clean, generated and released-JPEG cells read
chunk by chunk give the batches of the in-memory path, and torchrun's whole-chunk shares (simulated
here) put together give the one-process images, so the CSV does not depend on the rank count."""

import imagetrees
import pytest
import torch

from robench.corruptions.protocol import CHUNK
from robench.data import Split, load_split
from robench.data.jpeg_csets import ReleasedFolders
from robench.errors import RobenchError
from robench.eval.cell import CLEAN, Cell
from robench.eval.sources import cell_images, first_images, open_official

N = CHUNK * 2 + 10  # three chunks, the last short
CLASSES = ["ant", "bee", "cat"]
NOISE = Cell("gaussian_noise", 3)
RELEASED = Cell("fog", 2)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamed")
    ids = []
    for k in range(N):
        id_ = f"{CLASSES[k % 3]}/img_{k:05d}.JPEG"
        imagetrees.write_jpeg(root / "clean" / id_, k, (64, 64))
        ids.append(id_)
    imagetrees.released_c(root / "C", ids, ["fog"], severities=(2,), size=(64, 64))
    return root


@pytest.fixture(scope="module")
def streamed(trees):
    return load_split(f"folder:{trees / 'clean'}", False, preprocess="none", workers=2)


def collect(images, cell):
    batches = list(images.batches(cell))
    return torch.cat([b for b, _ in batches]), torch.cat([lab for _, lab in batches])


def shares(n, ranks):
    """_chunk_share's split: contiguous runs of whole chunks, one per rank."""
    chunks = -(-n // CHUNK)
    bounds = [chunks * r // ranks for r in range(ranks + 1)]
    return [slice(min(n, a * CHUNK), min(n, b * CHUNK)) for a, b in zip(bounds, bounds[1:])]


def test_streamed_cells_equal_the_in_memory_ones(streamed):
    memory = Split(streamed.read(0, N), streamed.labels, 3, CLASSES)
    assert torch.equal(first_images(streamed, 2), memory.images[:2])
    for cell in (CLEAN, NOISE):
        a = collect(cell_images(streamed, slice(0, N), None, 0, 256, None, device=torch.device("cpu")), cell)
        b = collect(cell_images(memory, slice(0, N), None, 0, 256, None, device=torch.device("cpu")), cell)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape == (N, 3, 64, 64)
    assert not torch.equal(a[0], b[0][torch.randperm(N)])  # the noise cell is not the clean images


@pytest.mark.parametrize("ranks", [2, 3])
def test_rank_shares_put_together_are_the_one_process_images(streamed, trees, ranks):
    official = open_official(trees / "C", streamed, "folder", ["fog"], [2])
    for cell, source in ((CLEAN, None), (NOISE, None), (RELEASED, official)):
        device = torch.device("cpu") if source is None else None
        whole = collect(cell_images(streamed, slice(0, N), source, 7, 300, None, device=device), cell)
        parts = [collect(cell_images(streamed, share, source, 7, 300, None, device=device), cell)
                 for share in shares(N, ranks)]
        assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
        assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])


def test_released_jpeg_cells_are_the_files_under_the_cell_folder(streamed, trees):
    official = open_official(trees / "C", streamed, "folder", ["fog"], [2])
    assert isinstance(official, ReleasedFolders)
    images, labels = collect(cell_images(streamed, slice(0, N), official, 0, 128, None), RELEASED)
    expected = streamed.rerooted(trees / "C" / "fog" / "2").read(0, N)
    assert torch.equal(images, expected) and torch.equal(labels, streamed.labels)
    assert not torch.equal(images, streamed.read(0, N))


def test_released_folders_are_checked_before_any_cell(streamed, trees, tmp_path):
    with pytest.raises(RobenchError, match="missing .*fog/3; download this part"):
        open_official(trees / "C", streamed, "folder", ["fog"], [2, 3])
    (tmp_path / "fog" / "2" / "ant").mkdir(parents=True)
    (tmp_path / "fog" / "2" / "dog").mkdir()
    with pytest.raises(RobenchError, match="holds 2 class folders, the clean set 3.*labels would not match"):
        open_official(tmp_path, streamed, "folder", ["fog"], [2])
    for cls in CLASSES:
        (tmp_path / "fog" / "2" / cls).mkdir(exist_ok=True)
    (tmp_path / "fog" / "2" / "dog").rmdir()
    cell = ReleasedFolders(tmp_path).cell(streamed, "fog", 2)
    with pytest.raises(RobenchError, match="cannot read image .*img_00000.JPEG"):
        cell.read(0, 2)


def test_the_python_api_evaluates_a_streamed_folder(tmp_path):
    import robench

    for k in range(9):
        imagetrees.write_jpeg(tmp_path / "tree" / CLASSES[k % 3] / f"{k}.JPEG", k, (300, 240))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3))
    frame = robench.evaluate(model, dataset=f"folder:{tmp_path / 'tree'}", corruptions="gaussian_noise",
                             severities="1", source="generated", device="cpu")
    assert frame["corruption"].tolist() == ["clean", "gaussian_noise"] and frame["n"].tolist() == [9, 9]


def test_released_imagenet_c_is_its_own_protocol_stored_as_jpeg85():
    from robench.errors import RobenchError
    from robench.eval.sources import resolve_protocol

    assert resolve_protocol("auto", True, (224, 224), "official", "imagenet", print) == ("imagenet-c", "jpeg85", "")
    tiny = resolve_protocol("auto", True, (64, 64), "official", "tiny-imagenet", print)
    assert tiny == ("tiny-imagenet-c", "jpeg85", "")
    assert resolve_protocol("auto", True, (32, 32), "official", "cifar10", print) == ("cifar10-c", "none", "")
    with pytest.raises(RobenchError, match="--no-storage needs --source generated"):
        resolve_protocol("auto", False, (224, 224), "official", "imagenet", print)
    with pytest.raises(RobenchError, match="made with protocol imagenet-c, not scaled"):
        resolve_protocol("scaled", True, (224, 224), "official", "imagenet", print)
