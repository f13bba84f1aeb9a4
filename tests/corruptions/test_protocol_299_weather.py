"""snow, frost, fog and spatter under the imagenet-c-299 protocol (make_imagenet_c_inception.py):
the official functions' statistics at 299 px and the parameters that differ from ImageNet-C's
(docs/faithfulness.md)."""

import json

import numpy as np
import pytest
import torch
from locations import ROOT, SHARED

from robench.corruptions import corrupt, frost_textures, weather
from robench.corruptions.frost_textures import texture_bank

PROTOCOL = "imagenet-c-299"
STATS = ROOT / "tests" / "corruptions" / "data" / PROTOCOL / "stats_weather.json"
WEATHER = ("snow", "frost", "fog", "spatter")
IMAGES = (0, 2)  # of the ImageNet-C golden inputs, as tools/stats_299_weather.py used them
COPIES = 2  # each copy gets its own draws: a stabler mean than the generator's 2 images per seed


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    """The statistics' test images: golden inputs 0 and 2 upscaled to 299 x 299 (PIL bicubic)."""
    from PIL import Image

    path = SHARED / "golden" / "imagenet-c" / "inputs.npy"
    if not path.exists():
        pytest.skip(f"{path} not found: the 299-px statistics tests need ../shared beside the clone")
    base = np.load(path)
    images = np.stack([np.asarray(Image.fromarray(base[i]).resize((299, 299), Image.BICUBIC)) for i in IMAGES])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().repeat(COPIES, 1, 1, 1)


def psnr_and_mean(out: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    """Per-image PSNR over all values (peak 255), averaged; mean intensity."""
    mse = (out.double() - clean.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(255.0**2 / mse)).mean().item(), out.double().mean().item()


# stats_weather.json: the official functions' means over seeds 0-3 (2 images) with tolerances
# max(0.3 dB, 1.5 x spread over seeds), max(1.0, 1.5 x spread); the corruption alone, no storage step.
@pytest.mark.parametrize("name", WEATHER)
def test_weather_299_matches_the_generators_statistics(name, clean, photographs):
    stats = json.loads(STATS.read_text())[name]
    for row in stats:
        out = corrupt(clean, name, row["severity"], seed=row["severity"], protocol=PROTOCOL, storage=False,
                      frost="official")
        psnr, mean = psnr_and_mean(out, clean)
        assert abs(psnr - row["psnr"]) <= row["tol_psnr"], (name, row, psnr)
        assert abs(mean - row["mean"]) <= row["tol_mean"], (name, row, mean)


def test_fog_299_draws_a_512_plasma_map_with_its_decays(monkeypatch):
    """make_imagenet_c_inception.py: plasma_fractal(mapsize=512), its top-left 299 x 299 kept, and
    wibble decays 2, 2, 1.8, 1.6, 1.5 (ImageNet-C's are 2, 2, 1.7, 1.5, 1.4)."""
    calls = []

    def record(n, mapsize, decay, generator, device):
        calls.append((mapsize, decay))
        maps = torch.ones((n, mapsize, mapsize), dtype=torch.float64, device=device)
        maps[:, :299, :299] = 0  # only this corner may reach the output
        return maps

    monkeypatch.setattr(weather, "plasma_fractal", record)
    image = torch.full((1, 3, 299, 299), 200, dtype=torch.uint8)
    for severity, decay in enumerate((2.0, 2.0, 1.8, 1.6, 1.5), 1):
        out = corrupt(image, "fog", severity, seed=0, protocol=PROTOCOL, storage=False)
        assert calls.pop() == (512, decay)
        strength = weather.FOG[PROTOCOL][severity - 1][0]
        expected = int(200 / 255 * (200 / 255) / (200 / 255 + strength) * 255)
        assert (out == expected).all()


def test_frost_299_crops_the_full_size_photographs(photographs):
    """No resize at 299 px (as at 224): the bank holds the photographs themselves, each larger
    than the 299 x 299 window (frost2/3 are 315 px tall: 16 start rows)."""
    bank = texture_bank(299, 299, "cpu", "official", PROTOCOL)
    for t, photo in enumerate(frost_textures._originals(frost_textures.OFFICIAL)):
        h, w = bank.sizes[t].tolist()
        assert (h, w) == tuple(photo.shape[:2]) == frost_textures.FILES[t][3]
        assert h > 299 and w > 299
        assert torch.equal(bank.textures[t, :h, :w], photo)
