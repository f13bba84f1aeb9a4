"""Model registry. Every model takes images (uint8, or float in [0, 1]) and normalises them itself,
so a checkpoint is self-contained: `build_model(name, num_classes, mean, std)` + its state dict."""

from robench.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model"]
