"""A small fast CNN for CPU work: three conv-BN-ReLU stages with pooling, then a linear head."""

from torch import nn


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def small_cnn(num_classes: int) -> nn.Module:
    return nn.Sequential(
        _stage(3, 32), _stage(32, 64), _stage(64, 128),  # 32 -> 16 -> 8 -> 4 px
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )
