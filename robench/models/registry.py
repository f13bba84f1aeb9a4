"""Model registry: name -> constructor(num_classes) of a backbone, wrapped by `build_model` in
the input normalisation every robench model carries. `timm:<name>` and `torchvision:<name>` are
families served by those libraries (robench.models.external)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robench.errors import RobenchError
from robench.models.external import timm_backbone, torchvision_backbone
from robench.models.resnet import resnet18
from robench.models.small_cnn import small_cnn
from robench.models.wide_resnet import wrn_40_2
from robench.registry import Registry

MODELS = Registry("model")
MODELS.add("resnet18", resnet18, "CIFAR ResNet-18 (3x3 stem, no max-pool), 11.2M params")
MODELS.add("wrn-40-2", wrn_40_2, "Wide ResNet 40-2 of the AugMix paper, 2.2M params")
MODELS.add("small-cnn", small_cnn, "small fast CNN for CPU work (6 conv layers, 16-32-64 channels, 0.07M params)")
MODELS.add("timm:<name>", timm_backbone, "any timm model, e.g. timm:resnetv2_50 (--pretrained: its weights)")
MODELS.add("torchvision:<name>", torchvision_backbone,
           "any torchvision classifier, e.g. torchvision:resnet18 (--pretrained: its weights)")


class Normalized(nn.Module):
    """Input normalisation inside the model: uint8 or [0, 1] float in, the backbone's logits out."""

    def __init__(self, backbone: nn.Module, mean: Sequence[float], std: Sequence[float], image_size: int | None = None):
        super().__init__()
        self.backbone, self.image_size = backbone, image_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        size = self.image_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):  # e.g. 32 px data for a 72 px model
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.backbone(x)


def build_model(name: str, num_classes: int, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                image_size: int | None = None, pretrained: bool = False) -> nn.Module:
    """The named backbone in its input normalisation, resizing to `image_size` first when given.
    `pretrained` loads a library family's weights (timm:, torchvision:)."""
    entry = MODELS.get(name)
    if entry.name.endswith(">"):  # a library family: the factory needs the full name
        backbone = entry.factory(name, num_classes, pretrained)
    elif pretrained:
        raise RobenchError(f"--pretrained needs a timm:<name> or torchvision:<name> model, not {name}")
    else:
        backbone = MODELS.create(name, num_classes)
    return Normalized(backbone, mean, std, image_size).to(memory_format=torch.channels_last)
