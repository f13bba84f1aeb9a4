"""snow: a thresholded, zoomed noise layer smeared by a motion blur, added twice over a brightened image.

Steps (the generator's, see docs/faithfulness.md), per image with its own draws:
1. layer ~ N(mean, std) per pixel (one grey layer, shared by the channels);
2. clipped_zoom by `zoom` (bigger flakes), values below `threshold` set to 0;
3. to 8 bits by truncation, ImageMagick motion blur at an angle U(-135, -45) degrees (streaks fall
   roughly downwards), back to [0, 1];
4. x = mix * x + (1 - mix) * max(x, 1.5 * grey(x) + 0.5) with grey = 0.299 R + 0.587 G + 0.114 B;
5. out = x + layer + layer rotated by 180 degrees (the same streaks again, upside down), truncated.

Parameters: one table per protocol (`SNOW`, read with protocol.pick). The four generators run
the same code; only their tables differ (Tiny-ImageNet-C keeps CIFAR's layer and blur and greys
more, ImageNet-C has its own, which the 299-px inception script reuses), and their radius, sigma and zoom are taken in pixels of their own
image size. Protocol "scaled" (robench's own) reads CIFAR's table and multiplies those three by
`min(H, W) / 32` (the zoom never below 1), as blur.py does.

Deliberate deviation: float32 throughout where the reference mixes float64 in; the layer is random
and goes through 8 bits, so this changes nothing measurable.
"""

from __future__ import annotations

import torch

from robench.corruptions import draws
from robench.corruptions._ops import finish, to_unit
from robench.corruptions.blur import clipped_zoom, motion_blur_q16
from robench.corruptions.protocol import pick
from robench.corruptions.registry import FUNCTIONS

# (mean, std, zoom, threshold, blur radius, blur sigma, mix) per severity, per generator
# (make_cifar_c.py, make_tinyimagenet_c.py, make_imagenet_c.py, make_imagenet_c_inception.py;
# docs/faithfulness.md).
SNOW = {
    "cifar10-c": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "tiny-imagenet-c": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
    ),
    "imagenet-c": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
}
# make_imagenet_c_inception.py (299 px) repeats ImageNet-C's table, in its own pixels.
SNOW["imagenet-c-299"] = SNOW["imagenet-c"]


@FUNCTIONS.register("snow", "weather: motion-blurred snow layers over a greyed image")
def snow(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    mean, std, zoom, threshold, radius, sigma, mix = pick(SNOW, protocol, severity)
    n, _, h, w = images.shape
    device = images.device
    # Tiny-ImageNet-C and ImageNet-C tables are in their own pixels; CIFAR's (32 px: scale 1) and "scaled" scale.
    scale = min(h, w) / 32 if protocol in ("scaled", "cifar10-c") else 1.0

    layer = draws.randn(generator, (n, 1, h, w), device=device).mul_(std).add_(mean)
    layer = clipped_zoom(layer, max(1.0, zoom * scale))
    layer = finish(layer.masked_fill_(layer < threshold, 0))
    angles = draws.rand(generator, (n,), device=device, dtype=torch.float64) * 90 - 135
    layer = to_unit(motion_blur_q16(layer, radius * scale, sigma * scale, angles), torch.float32)

    x = to_unit(images, torch.float32)
    grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    x = mix * x + (1 - mix) * torch.maximum(x, grey * 1.5 + 0.5)
    return finish(x + layer + layer.flip(-2, -1))
