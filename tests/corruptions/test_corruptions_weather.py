"""frost and fog: golden statistics, texture handling, and the corruption contract."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch

from robench.corruptions import corrupt, frost_textures
from robench.corruptions.frost_textures import resolve_frost, texture_bank
from robench.corruptions.weather import frost, plasma_fractal
from robench.data import download
from robench.errors import RobenchError

FROST_FILES = [name for name, *_ in frost_textures.FILES]


@pytest.fixture
def frost_dir(shared_dir, tmp_path, monkeypatch):
    """A data dir holding the real frost photographs (copied from shared/, never downloaded)."""
    (tmp_path / "frost").mkdir()
    for name in FROST_FILES:
        shutil.copy(shared_dir / "frost" / name, tmp_path / "frost" / name)
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path))
    download.set_data_dir(None)
    frost_textures.clear_cache()
    yield tmp_path
    frost_textures.clear_cache()


def no_fetch_recorder(monkeypatch) -> list:
    """Make every download fail as if offline; returns the list of attempted URLs."""
    attempts = []

    def no_fetch(url, dest, md5, what, size=None, **_):
        attempts.append(url)
        raise RobenchError(f"{what}: cannot download {url} (offline)")

    monkeypatch.setattr(download, "fetch", no_fetch)
    return attempts


@pytest.fixture
def no_photographs(tmp_path, monkeypatch):
    """An empty data dir and no network. Yields the list of attempted downloads."""
    attempts = no_fetch_recorder(monkeypatch)
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path / "empty"))
    download.set_data_dir(None)
    frost_textures.clear_cache()
    yield attempts
    frost_textures.clear_cache()


@pytest.fixture
def offline(no_photographs, monkeypatch):
    """No photographs anywhere: also hides an installed imagecorruptions package."""
    monkeypatch.setattr(frost_textures, "package_frost_dirs", lambda: [])
    return no_photographs


def shared_frost(shared_dir):
    """The real photographs in shared/frost (read by tests, never committed); skip when absent."""
    if not (shared_dir / "frost").is_dir():
        pytest.skip(f"{shared_dir / 'frost'} not found")
    return shared_dir / "frost"


def fake_package(root, shared_dir, corrupt_name=None):
    """An importable-looking imagecorruptions under root holding copies of the shared photographs,
    with one byte of `corrupt_name` flipped. Importing it fails, so using it must not import it."""
    originals = shared_frost(shared_dir)
    package = root / "imagecorruptions"
    (package / "frost").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('robench must not import imagecorruptions')\n")
    for name in FROST_FILES:
        data = bytearray((originals / name).read_bytes())
        if name == corrupt_name:
            data[len(data) // 2] ^= 0xFF
        (package / "frost" / name).write_bytes(bytes(data))
    return root


def run_frost(images, textures, seed=0, severity=3):
    return frost(images, severity, torch.Generator().manual_seed(seed), textures=textures)


def golden_inputs(shared_dir) -> torch.Tensor:
    return torch.from_numpy(np.load(shared_dir / "golden" / "cifar10c" / "inputs.npy")).permute(0, 3, 1, 2).contiguous()


def psnr_and_mean(out: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    """The golden files' statistics: per-image PSNR over all values (peak 255), averaged; mean intensity."""
    diff = out.double() - clean.double()
    mse = diff.pow(2).flatten(1).mean(1)
    return (10 * torch.log10(255.0**2 / mse)).mean().item(), out.double().mean().item()


def check_golden_stats(shared_dir, name: str, copies: int = 4) -> None:
    """Mean PSNR and intensity per severity within random_stats.json's tolerance. The 128 inputs are
    repeated `copies` times (each copy gets its own draws) to steady the estimate."""
    stats = json.loads((shared_dir / "golden" / "cifar10c" / "random_stats.json").read_text())[name]
    clean = golden_inputs(shared_dir).repeat(copies, 1, 1, 1)
    for row in stats:
        out = corrupt(clean, name, row["severity"], seed=row["severity"])
        psnr, mean = psnr_and_mean(out, clean)
        assert abs(psnr - row["psnr"]) <= row["tol_psnr"], (name, row, psnr)
        assert abs(mean - row["mean"]) <= row["tol_mean"], (name, row, mean)


def test_frost_matches_golden_statistics(frost_dir, shared_dir):
    check_golden_stats(shared_dir, "frost")
    assert resolve_frost("auto") == "official"


def test_fog_matches_golden_statistics(shared_dir):
    check_golden_stats(shared_dir, "fog")


def test_frost_textures_are_the_photographs_shrunk_by_subsampling(frost_dir, shared_dir):
    """At 32 px the generator's cv2.resize(fx=0.2) is exactly [2::5, 2::5] of the RGB photograph."""
    from PIL import Image

    bank = frost_textures.texture_bank(32, 32, "cpu")
    for i, name in enumerate(FROST_FILES):
        with Image.open(shared_dir / "frost" / name) as image:
            expected = torch.from_numpy(np.asarray(image.convert("RGB"))[2::5, 2::5].copy())
        h, w = bank.sizes[i].tolist()
        assert torch.equal(bank.textures[i, :h, :w], expected), name


def test_frost_is_a_weighted_sum_with_a_window_of_a_texture(frost_dir):
    """On black images, frost at severity 2 is floor(0.3 * window) of one of the five textures,
    with windows starting strictly before the last position (randint's exclusive bound)."""
    bank = frost_textures.texture_bank(32, 32, "cpu")
    out = corrupt(torch.zeros(32, 3, 32, 32, dtype=torch.uint8), "frost", 2, seed=3).double()
    used = set()
    for image in out:
        found = False
        for t in range(5):
            h, w = bank.sizes[t].tolist()
            tex = (0.3 * bank.textures[t, :h, :w].double()).floor().permute(2, 0, 1)
            # Candidate starts whose top-left pixel matches, then the whole window; starts at the
            # last position (h - 32 or w - 32) are never drawn.
            candidates = (tex[:, : h - 31, : w - 31] == image[:, :1, :1]).all(0).nonzero().tolist()
            for r, c in candidates:
                if torch.equal(tex[:, r : r + 32, c : c + 32], image):
                    assert r < h - 32 and c < w - 32
                    found = True
                    used.add(t)
        assert found
    assert len(used) >= 3  # several textures get drawn


def test_frost_auto_offline_uses_procedural_silently_and_downloads_once(offline, capfd, tmp_path, monkeypatch):
    images = torch.full((4, 3, 32, 32), 100, dtype=torch.uint8)
    out = corrupt(images, "frost", 3, seed=0)  # frost's default choice is "auto"
    assert resolve_frost("auto") == "procedural"
    assert torch.equal(out, run_frost(images, "procedural", seed=0))
    assert len(offline) == 1
    # Another empty data dir in the same process: no second wait for the network.
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path / "other"))
    corrupt(images, "frost", 3, seed=1)
    assert len(offline) == 1 and resolve_frost("auto") == "procedural"
    assert capfd.readouterr().err == ""  # warning about the fallback is the caller's job
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert (out.double().mean() - 100).abs() > 5  # frost lightens/darkens noticeably


def test_frost_choice_must_be_known():
    assert frost_textures.FROST_TEXTURES == ("auto", "official", "procedural")
    with pytest.raises(RobenchError, match="auto, official, procedural") as e:
        resolve_frost("photos")
    assert "\n" not in str(e.value)
    with pytest.raises(RobenchError, match="photos"):
        run_frost(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "photos")


def test_procedural_never_reads_the_data_dir_or_network_and_is_deterministic(monkeypatch):
    def forbidden(*_, **__):
        raise AssertionError("procedural frost touched the disk or network")

    monkeypatch.setattr(download, "fetch", forbidden)
    monkeypatch.setattr(download, "md5sum", forbidden)
    monkeypatch.setattr(frost_textures, "_data_dir", forbidden)
    monkeypatch.setattr(frost_textures, "package_frost_dirs", forbidden)
    monkeypatch.setattr(frost_textures, "_decode", forbidden)
    frost_textures.clear_cache()
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert resolve_frost("procedural") == "procedural"
    out = run_frost(images, "procedural")
    assert torch.equal(out, run_frost(images, "procedural"))
    frost_textures.clear_cache()  # regenerated from scratch: the same textures
    assert torch.equal(out, run_frost(images, "procedural"))
    assert (out.int() - images.int()).abs().float().mean() > 5


def test_official_unavailable_raises_one_line_every_time(offline, tmp_path):
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    for _ in range(2):  # a remembered failed download does not make "official" mean anything else
        with pytest.raises(RobenchError) as e:
            run_frost(images, "official")
        message = str(e.value)
        assert "\n" not in message and "frost" in message
        assert str(tmp_path / "empty" / "frost") in message
        assert "pip install imagecorruptions --no-deps" in message and "--frost procedural" in message
        with pytest.raises(RobenchError):
            resolve_frost("official")
    assert len(offline) == 1  # the network is tried once per process


def test_auto_resolves_to_procedural_without_photographs_and_official_once_they_arrive(offline, shared_dir, tmp_path):
    assert resolve_frost("auto") == "procedural"
    # No sticky fallback: the photographs copied into the data dir are used from then on.
    shutil.copytree(shared_frost(shared_dir), tmp_path / "empty" / "frost")
    assert resolve_frost("auto") == "official"
    assert resolve_frost("official") == "official"
    assert len(offline) == 1


def test_auto_and_official_use_the_data_dir_without_the_network(frost_dir, monkeypatch):
    attempts = no_fetch_recorder(monkeypatch)
    monkeypatch.setattr(frost_textures, "package_frost_dirs", lambda: [])
    assert resolve_frost("auto") == "official" and resolve_frost("official") == "official"
    assert attempts == []


def test_a_corrupt_file_in_the_data_dir_is_not_used(frost_dir, monkeypatch):
    attempts = no_fetch_recorder(monkeypatch)
    monkeypatch.setattr(frost_textures, "package_frost_dirs", lambda: [])
    path = frost_dir / "frost" / "frost4.jpg"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert resolve_frost("auto") == "procedural"
    with pytest.raises(RobenchError, match="frost4.jpg does not match its md5; delete it"):
        resolve_frost("official")
    assert attempts == []  # a wrong file already there is named, not downloaded over


def test_an_installed_imagecorruptions_package_is_found_without_importing_it(no_photographs, shared_dir, tmp_path, monkeypatch):
    attempts = no_photographs
    monkeypatch.syspath_prepend(str(fake_package(tmp_path / "site", shared_dir)))
    assert resolve_frost("official") == "official" and resolve_frost("auto") == "official"
    assert "imagecorruptions" not in sys.modules and attempts == []
    # Used: the 32-px bank is the shared photographs subsampled.
    from PIL import Image

    bank = texture_bank(32, 32, "cpu", "official")
    with Image.open(shared_dir / "frost" / "frost1.png") as image:
        expected = torch.from_numpy(np.asarray(image.convert("RGB"))[2::5, 2::5].copy())
    h, w = bank.sizes[0].tolist()
    assert torch.equal(bank.textures[0, :h, :w], expected)


def test_an_imagecorruptions_copy_with_a_corrupt_byte_is_rejected(no_photographs, shared_dir, tmp_path, monkeypatch):
    attempts = no_photographs
    monkeypatch.syspath_prepend(str(fake_package(tmp_path / "site", shared_dir, corrupt_name="frost3.png")))
    assert frost_textures.package_frost_dirs() == [tmp_path / "site" / "imagecorruptions" / "frost"]  # it is seen...
    with pytest.raises(RobenchError):
        resolve_frost("official")  # ...but not trusted
    assert resolve_frost("auto") == "procedural"
    assert len(attempts) == 1  # only frost3.png is missing, so only it is downloaded
    assert attempts[0].endswith("frost3.png")


def test_official_and_procedural_frost_differ_and_each_is_deterministic(frost_dir):
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    official = run_frost(images, "official")
    procedural = run_frost(images, "procedural")
    assert not torch.equal(official, procedural)
    assert torch.equal(official, run_frost(images, "official"))
    assert torch.equal(procedural, run_frost(images, "procedural"))
    assert torch.equal(official, run_frost(images, "auto"))  # the photographs are available


def test_procedural_textures_resemble_the_photographs():
    """Same colour statistics per texture, so frost keeps its strength offline."""
    for t, (mean, std) in zip(frost_textures.procedural_textures(), frost_textures._STATS):
        sub = t[2::5, 2::5].double()
        assert torch.allclose(sub.mean((0, 1)), torch.tensor(mean, dtype=torch.float64), atol=3)
        assert torch.allclose(sub.std((0, 1)), torch.tensor(std, dtype=torch.float64), rtol=0.1)


def test_plasma_maps_are_normalised_and_per_image():
    maps = plasma_fractal(8, 32, 2.0, torch.Generator().manual_seed(0), "cpu")
    assert maps.shape == (8, 32, 32) and maps.dtype == torch.float64
    assert torch.all(maps.amin((1, 2)) == 0) and torch.all(maps.amax((1, 2)) == 1)
    assert not torch.equal(maps[0], maps[1])


def test_fog_brightens_by_the_plasma_and_rescales_by_the_image_maximum():
    """A flat grey image stays flat in colour (same map on all channels) and keeps the max/(max+t) law."""
    images = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    out = corrupt(images, "fog", 5, seed=0).double()
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    x, t = 128 / 255, 1.5
    low, high = (x * x / (x + t)) * 255, ((x + t) * x / (x + t)) * 255
    assert out.min() >= np.floor(low) and out.max() <= np.floor(high) + 1
    assert out.min() <= low + 1 and out.max() >= high - 1  # the map spans [0, 1]


@pytest.mark.parametrize("name", ["frost", "fog"])
def test_contract(name, frost_dir):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=gen)
    out = corrupt(images, name, 3, seed=7)
    assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
    assert torch.equal(out, corrupt(images, name, 3, seed=7))  # deterministic for a seed
    assert not torch.equal(out, corrupt(images, name, 3, seed=8))  # seeds matter
    same = images[:1].repeat(4, 1, 1, 1)
    outs = corrupt(same, name, 3, seed=0)
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[2], outs[3])  # per-image draws
    odd = torch.randint(0, 256, (3, 3, 48, 40), dtype=torch.uint8, generator=gen)
    out = corrupt(odd, name, 3, seed=0, protocol="scaled")
    assert out.shape == odd.shape and (out.int() - odd.int()).abs().float().mean() > 5
