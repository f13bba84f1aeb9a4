"""A small fast CNN for CPU work: three conv-BN-ReLU stages with pooling, then a linear head."""

from torch import nn


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def small_cnn(num_classes: int, width: int = 16) -> nn.Module:
    # Width 16 keeps a CPU training step cheap (~10M multiply-adds per image forward).
    return nn.Sequential(
        _stage(3, width), _stage(width, 2 * width), _stage(2 * width, 4 * width),  # 32 -> 16 -> 8 -> 4 px
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes),
    )
