"""The input convention of a library model: its normalisation is in the units of its input range,
so for 0-255 input both the mean and the std are scaled by 255, and the model sees the same
normalised tensor whichever range it takes."""

import pytest
import torch
from torch import nn

from robench.models.external import IMAGENET, InputAdapter, convention

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_library_models_normalisation_is_scaled_to_0_255_mean_and_std():
    conv = convention("library", "torchvision:resnet18", "0-255", None, None)
    assert conv.input_range == "0-255"
    assert conv.mean == pytest.approx(tuple(255 * m for m in IMAGENET[0]))
    assert conv.std == pytest.approx(tuple(255 * s for s in IMAGENET[1]))
    unit = convention("library", "torchvision:resnet18", "0-1", None, None)
    assert (unit.mean, unit.std) == IMAGENET


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_the_model_sees_the_same_normalised_input_for_either_range(dtype):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8, generator=generator)
    images = images if dtype == torch.uint8 else images.float() / 255
    seen = {}
    for input_range in ("0-1", "0-255"):
        adapter = InputAdapter(nn.Identity(), convention("library", "torchvision:resnet18", input_range, None, None))
        seen[input_range] = adapter(images)
    expected = (images.float() / (255 if dtype == torch.uint8 else 1) - torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    assert torch.allclose(seen["0-1"], expected, atol=1e-5)
    assert torch.allclose(seen["0-255"], expected, atol=1e-4)


def test_pretrained_library_weights_bring_their_input_size():
    """Pretrained weights are evaluated at their own input size (timm's pretrained_cfg, torchvision's
    weights transforms): the protocol's 224-px images are resized to it; untrained models, and an
    explicit --image-size, are left alone."""
    bit = "timm:resnetv2_50x1_bit.goog_in21k_ft_in1k"  # pretrained at 448 px
    assert convention("library", bit, None, None, None, pretrained=True).image_size == 448
    assert convention("library", "torchvision:resnet50", None, None, None, pretrained=True).image_size == 224
    assert convention("library", bit, None, None, None).image_size is None
    assert convention("library", bit, None, None, 300, pretrained=True).image_size == 300
    adapter = InputAdapter(nn.Identity(), convention("library", bit, None, None, None, pretrained=True))
    assert adapter(torch.zeros(2, 3, 224, 224, dtype=torch.uint8)).shape == (2, 3, 448, 448)
