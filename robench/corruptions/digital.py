"""Digital corruptions: brightness, contrast, saturate (float64, like the generator), pixelate and
jpeg_compression (Pillow's JPEG save at a low quality and decode: robench.corruptions.jpeg).

brightness and saturate go through scikit-image's HSV conversion, restated exactly (see
`rgb_to_hsv` / `hsv_to_rgb`); contrast scales each channel about its own mean. All three are
float64 because the generator's final `np.uint8` truncation turns last-bit differences into
+-1 errors on values that land on an integer.

pixelate is Pillow's BOX resize down to `int(size * c)` and back up, in Pillow's fixed-point
arithmetic, as one small matrix product per pass (precomputed per size). For tall images
Pillow 13 changes the order of the two passes (see `box_resize`); at 32x32 it does not.

Protocols (protocol.PROTOCOLS): each function reads its parameters from a per-protocol table,
the generators' own lists (make_cifar_c.py, make_tinyimagenet_c.py, make_imagenet_c.py,
make_imagenet_c_inception.py); the code is the same in all four generators. The only size-bound
parameter is pixelate's intermediate size, `int(S * c)` with S the generator's image side (32, 64,
224, 299); robench takes `int(H * c)` by
`int(W * c)`, the same numbers at those sizes, and what "scaled" (CIFAR's factors) uses at others.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from robench.corruptions import draws
from robench.corruptions._ops import exact_div, exact_div_, to_unit
from robench.corruptions.jpeg import jpeg_round_trip
from robench.corruptions.protocol import pick
from robench.corruptions.registry import FUNCTIONS

# ---------------------------------------------------------------- HSV (scikit-image semantics)


def rgb_to_hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """skimage.color.rgb2hsv on (N, 3, H, W) floats in [0, 1]; returns H, S, V, each (N, H, W).

    Hue comes from the channel holding the maximum; on ties blue wins over green over red,
    because skimage assigns red, then green, then blue, each overwriting the previous.
    """
    r, g, b = rgb.unbind(1)
    v = rgb.amax(1)
    delta = v - rgb.amin(1)
    grey = delta == 0
    blue_max = b == v
    green_max = (g == v) & ~blue_max
    # (numerator, offset) of the hue sextant: red (g-b, 0), green (b-r, 2), blue (r-g, 4).
    num = torch.where(blue_max, r - g, torch.where(green_max, b - r, g - b))
    offset = blue_max * 4.0 + green_max * 2.0  # + 0.0 leaves red's quotient bit-identical
    h = exact_div_(num.div_(delta.masked_fill(grey, 1.0)).add_(offset), 6.0)
    h = h.add_(h < 0).masked_fill_(grey, 0.0)  # skimage's `% 1`: h lies in [-1/6, 5/6], so only + 1
    s = (delta / v.masked_fill(grey, 1.0)).masked_fill_(grey, 0.0)  # max == min: S = 0 (also V = 0)
    return h, s, v


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """skimage.color.hsv2rgb of H, S, V (each (N, H, W), in [0, 1]); returns (N, 3, H, W).

    skimage computes p = v(1-s), q = v(1-fs), t = v(1-(1-f)s) and gives, for the sextant
    hi = uint8(floor(6H)) % 6, (R, G, B) = (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q).
    Every pixel thus needs v, p and one of q (odd hi) or t (even hi); the same float
    operations are done here on whole planes, and the sextant only routes them to channels.
    """
    h6 = h * 6.0
    hi_f = torch.floor(h6)
    f = h6 - hi_f
    hi = hi_f.to(torch.uint8).remainder_(6)  # 6H == 6.0 (H a hair under 1) wraps to sextant 0
    odd = (hi & 1).bool()
    p = (1 - s).mul_(v)
    m = torch.where(odd, f, 1 - f).mul_(s).neg_().add_(1).mul_(v)  # q on odd sextants, t on even
    v_at_r, v_at_b = (hi == 0) | (hi == 5), (hi == 3) | (hi == 4)
    p_at_r, p_at_b = (hi == 2) | (hi == 3), hi <= 1
    out = torch.empty((h.shape[0], 3, *h.shape[1:]), dtype=h.dtype, device=h.device)
    torch.where(v_at_r, v, torch.where(p_at_r, p, m), out=out[:, 0])
    torch.where(v_at_r | v_at_b, torch.where(p_at_r | p_at_b, m, p), v, out=out[:, 1])
    torch.where(v_at_b, v, torch.where(p_at_b, p, m), out=out[:, 2])
    return out


def _finish_(unit: torch.Tensor) -> torch.Tensor:
    """In place `np.uint8(clip(x, 0, 1) * 255)`: the uint8 cast truncates, like numpy's."""
    return unit.clamp_(0, 1).mul_(255).to(torch.uint8)


# ---------------------------------------------------------------- brightness, saturate, contrast

# Per-protocol tables, the generators' lists ("scaled" reads cifar10-c's; protocol.pick).
BRIGHTNESS_TABLE = {  # added to V
    "cifar10-c": (0.05, 0.1, 0.15, 0.2, 0.3),
    "tiny-imagenet-c": (0.1, 0.2, 0.3, 0.4, 0.5),
    "imagenet-c": (0.1, 0.2, 0.3, 0.4, 0.5),
    "imagenet-c-299": (0.1, 0.2, 0.3, 0.4, 0.5),
}
SATURATE_TABLE = {  # (scale, offset) of S
    "cifar10-c": ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)),
    "tiny-imagenet-c": ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (30.0, 0.2)),
    "imagenet-c": ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
    "imagenet-c-299": ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
}
CONTRAST_TABLE = {  # factor towards the channel mean
    "cifar10-c": (0.75, 0.5, 0.4, 0.3, 0.15),
    "tiny-imagenet-c": (0.4, 0.3, 0.2, 0.1, 0.05),
    "imagenet-c": (0.4, 0.3, 0.2, 0.1, 0.05),
    "imagenet-c-299": (0.4, 0.3, 0.2, 0.1, 0.05),
}
PIXELATE_TABLE = {  # intermediate size as a fraction of the side
    "cifar10-c": (0.95, 0.9, 0.85, 0.75, 0.65),
    "tiny-imagenet-c": (0.9, 0.8, 0.7, 0.6, 0.5),
    "imagenet-c": (0.6, 0.5, 0.4, 0.3, 0.25),
    "imagenet-c-299": (0.5, 0.4, 0.3, 0.25, 0.2),
}
PIXELATE = PIXELATE_TABLE["cifar10-c"]  # (the name older tests index)


@FUNCTIONS.register("brightness", "digital: raise V in HSV")
def brightness(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    c = pick(BRIGHTNESS_TABLE, protocol, severity)
    h, s, v = rgb_to_hsv(to_unit(images))
    return _finish_(hsv_to_rgb(h, s, (v + c).clamp_(0, 1)))


@FUNCTIONS.register("saturate", "digital: scale S in HSV (extra)")
def saturate(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    # At severities 4-5 the offset gives grey pixels (hue 0) saturation 0.1/0.2: a red tint,
    # as in the generator.
    scale, offset = pick(SATURATE_TABLE, protocol, severity)
    h, s, v = rgb_to_hsv(to_unit(images))
    return _finish_(hsv_to_rgb(h, (s * scale + offset).clamp_(0, 1), v))


@FUNCTIONS.register("contrast", "digital: pull values towards the image mean")
def contrast(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    c = pick(CONTRAST_TABLE, protocol, severity)
    x = to_unit(images)
    n, ch, h, w = x.shape
    means = exact_div(sequential_sum(x.reshape(n, ch, h * w)).view(n, ch, 1, 1), h * w)
    return _finish_((x - means).mul_(c).add_(means))


def _sequential_cumsum(device: torch.device) -> bool:
    return device.type == "cpu"  # (tests patch this to run the loop on the CPU)


_SEQUENTIAL_MAX = 64 * 64  # pixels per plane summed one by one off the CPU (one small kernel each)


def sequential_sum(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, P) summed over P one value after another, as numpy's mean over axes (0, 1) of an
    (H, W, 3) array adds the pixels (no pairwise summation, since the channel axis is the inner
    loop): in another order, some contrast values flip by 1. On the CPU the last entry of a
    cumulative sum is that order; a GPU's cumsum is a parallel scan, so there the pixels are
    added in a loop up to 64x64 pixels, and larger planes (ImageNet-C's 224x224: 50,176 kernels
    a call would be slow) are summed on the host: one copy and one wait per call, exact."""
    if _sequential_cumsum(x.device):
        return x.cumsum(2)[:, :, -1]
    if x.shape[-1] > _SEQUENTIAL_MAX:
        return x.cpu().cumsum(2)[:, :, -1].to(x.device)
    total = x[:, :, 0].clone()
    for i in range(1, x.shape[-1]):
        total += x[:, :, i]
    return total


# ---------------------------------------------------------------- pixelate (Pillow BOX resize)

_PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling: 32 - 8 - 2


@lru_cache(maxsize=None)
def _box_coefficients(in_size: int, out_size: int) -> tuple[tuple[int, ...], ...]:
    """Pillow's BOX resampling coefficients (out_size x in_size), as fixed-point integers.

    Restates Pillow's precompute_coeffs in the same double arithmetic: the window of output
    pixel i is centred on (i + 0.5) * scale; an input pixel gets weight 1 when its centre lies
    in the box (-0.5, 0.5] * max(scale, 1) around it (not area coverage), then the weights are
    normalised and rounded to integers over 2^22.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    rows = []
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        weights = [1.0 if -0.5 < (x - center + 0.5) / filterscale <= 0.5 else 0.0 for x in range(lo, hi)]
        total = sum(weights)
        row = [0] * in_size
        for x, w in zip(range(lo, hi), weights):
            w = w / total if total != 0 else w
            row[x] = int(0.5 + w * (1 << _PRECISION_BITS))
        rows.append(tuple(row))
    return tuple(rows)


def _resample_matrix(in_size: int, out_size: int, device) -> torch.Tensor:
    return torch.tensor(_box_coefficients(in_size, out_size), dtype=torch.float64, device=device)


def _fixed_point(acc: torch.Tensor) -> torch.Tensor:
    """Pillow's clip8((2^21 + sum k*v) >> 22); float64 holds these integers (< 2^31) exactly."""
    half = float(1 << (_PRECISION_BITS - 1))
    return torch.floor((acc + half) * (1.0 / (1 << _PRECISION_BITS))).clamp_(0, 255)


def box_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pillow `resize((width, height), BOX)` of float64 (N, C, H, W) holding uint8 values.

    Two passes, each rounded to uint8; a pass whose size does not change is skipped. Pillow 13
    runs the vertical pass first when the height shrinks by more than twice as many pixels as
    the width (older Pillow always went horizontal first); at square sizes, 32x32 included,
    both orders are the horizontal-first one.
    """
    in_h, in_w = x.shape[2:]

    def horizontal(x):
        return _fixed_point(x @ _resample_matrix(in_w, width, x.device).T) if width != in_w else x

    def vertical(x):
        return _fixed_point(_resample_matrix(in_h, height, x.device) @ x) if height != in_h else x

    if in_h - height > 2 * (in_w - width):
        return horizontal(vertical(x))
    return vertical(horizontal(x))


def _nearest_index(in_size: int, out_size: int, device) -> torch.Tensor:
    # Pillow's BOX upscale gives each output pixel exactly one source pixel, floor((i+0.5)*in/out).
    scale = in_size / out_size
    return torch.tensor([int((i + 0.5) * scale) for i in range(out_size)], device=device)


def pixelate_size(size: int, severity: int, protocol: str = "cifar10-c") -> int:
    return max(1, int(size * pick(PIXELATE_TABLE, protocol, severity)))


@FUNCTIONS.register("pixelate", "digital: box-downsample and nearest upsample")
def pixelate(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    h, w = images.shape[2:]
    sh, sw = pixelate_size(h, severity, protocol), pixelate_size(w, severity, protocol)
    small = box_resize(images.to(torch.float64), sh, sw).to(torch.uint8)
    rows = _nearest_index(sh, h, images.device)
    cols = _nearest_index(sw, w, images.device)
    return small.index_select(2, rows).index_select(3, cols)


# ---------------------------------------------------------------- jpeg_compression (the codec: jpeg.py)

JPEG_QUALITY_TABLE = {  # Pillow's `quality`
    "cifar10-c": (80, 65, 58, 50, 40),
    "tiny-imagenet-c": (65, 58, 50, 40, 25),
    "imagenet-c": (25, 18, 15, 10, 7),
    "imagenet-c-299": (23, 16, 13, 8, 5),
}


@FUNCTIONS.register("jpeg_compression", "digital: JPEG encode and decode at low quality")
def jpeg_compression(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    return jpeg_round_trip(images, pick(JPEG_QUALITY_TABLE, protocol, severity))
