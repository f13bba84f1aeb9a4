"""Augmentation policies as batched programs with per-sample randomness.

`make_policy(name, **params)` returns a callable `policy(images, generator=None, seed=None)`;
every image draws its own crop, ops, magnitudes and weights from `generator` (a torch.Generator on
the images' device; the default stream when None) or from a new one seeded with `seed`. Inputs and
outputs follow the table in `robench.images`: uint8 in, uint8 out; floats in [0, 1] in, float32
out; `dtype=torch.float32` asks for float32 whatever the input (AugMix's mix is then exact).
`policy(images, generator, return_params=True)` also returns a dict of the per-sample draws, so
tests (and curious users) can rebuild any image by hand.

Base crop+flip: every policy but none/standard/simple first applies the standard CIFAR crop+flip
(a random crop of the 4-px zero-padded image, then a horizontal flip with p = 0.5), as the official
AugMix code and common CIFAR practice do; `base="none"` turns it off (e.g. to make two AugMix views
of one already-cropped image for the JSD loss).

Sources (docs/faithfulness.md): randaugment, autoaugment and trivialaugment follow torchvision's
RandAugment, AutoAugment(CIFAR10) and TrivialAugmentWide op spaces, magnitude tables and signs,
but draw per image; augmix follows the official google-research/augmix code, not torchvision's
AugMix (which shares one op chain per call and includes the colour ops by default).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import RobenchError
from ..images import as_batch, generator_for
from ..registry import Param, Registry, resolve_params
from . import common, dispatch, geometry, pixel
from .workspace import thread_workspace

# ----------------------------------------------------------------------------- random draws
# All draws go through these helpers so that every one uses the caller's generator and device.


def _real(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _rand(shape, gen, device) -> Tensor:
    return torch.rand(shape, generator=gen, device=device, dtype=_real(device))


def _randint(low: int, high: int, shape, gen, device) -> Tensor:
    return torch.randint(low, high, shape, generator=gen, device=device)


def _take(table: Tensor, index: Tensor) -> Tensor:
    """table[index] for a 1-D table (index_select: advanced indexing is several times slower)."""
    return table.index_select(0, index.reshape(-1)).view(index.shape)


def _gamma(alpha: float, shape, gen, device) -> Tensor:
    if alpha == 1:  # Gamma(1) is Exp(1), drawn several times faster (AugMix's default alpha)
        return torch.empty(shape, dtype=_real(device), device=device).exponential_(generator=gen)
    return torch._standard_gamma(torch.full(shape, float(alpha), dtype=_real(device), device=device), generator=gen)


def dirichlet(alpha: float, shape, gen, device) -> Tensor:
    """Dirichlet(alpha, ..., alpha) over the last dim of shape (normalised Gamma draws)."""
    g = _gamma(alpha, shape, gen, device)
    return g / g.sum(-1, keepdim=True)


def beta(a: float, b: float, shape, gen, device) -> Tensor:
    """Beta(a, b) = Ga / (Ga + Gb)."""
    ga, gb = _gamma(a, shape, gen, device), _gamma(b, shape, gen, device)
    return ga / (ga + gb)


def standard_crop_flip(x: Tensor, gen, draws: dict, pad: int = 4) -> Tensor:
    """Random crop of the `pad`-px zero-padded image (same size), then hflip with p = 0.5."""
    n, dev = x.shape[0], x.device
    top, left = _randint(0, 2 * pad + 1, (n,), gen, dev), _randint(0, 2 * pad + 1, (n,), gen, dev)
    flip = _rand((n,), gen, dev) < 0.5
    draws.update(crop_top=top, crop_left=left, flip=flip)
    return geometry.crop_flip(x, top, left, flip, pad)


# ----------------------------------------------------------------------------- registry

POLICIES = Registry("policy")

_BASE = Param("standard", "crop+flip applied before the policy", choices=("standard", "none"))
_INTERP = Param("nearest", "resampling of the geometric ops", choices=("nearest", "bilinear"))


class Policy:
    """A configured policy. Subclasses set name, description, params and implement `apply`."""

    name: str = ""
    description: str = ""
    params: dict[str, Param] = {}

    def __init__(self, **given):
        self.config = resolve_params(f"policy '{self.name}'", self.params, given)
        self.check()

    def check(self) -> None:
        """Cross-parameter validation (RobenchError)."""

    def apply(self, x: Tensor, gen, draws: dict) -> Tensor:
        raise NotImplementedError

    def __call__(self, images: Tensor, generator: torch.Generator | None = None, seed: int | None = None,
                 return_params: bool = False, dtype: torch.dtype | None = None):
        """Augment images (see `robench.images` for the accepted inputs and what comes out). With
        return_params, also return a dict of the draws: always "base" (the uint8 images after the
        base crop+flip, what the policy proper acted on), plus the policy's per-image draws
        (crop_top/crop_left/flip, ops, params, ... see each policy)."""
        batch = as_batch(images, f"policy '{self.name}'")
        generator = generator_for(batch.images.device, generator, seed, f"policy '{self.name}'")
        draws: dict = {}
        x = batch.images
        if x.shape[0] == 0:  # nothing to draw for
            draws["base"] = x
            out = batch.restore(x, dtype)
            return (out, draws) if return_params else out
        if self.config.get("base") == "standard":  # policies with a `base` parameter
            x = standard_crop_flip(x, generator, draws)
        draws["base"] = x
        out = batch.restore(self.apply(x, generator, draws), dtype)
        return (out, draws) if return_params else out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name}({args})"


# ----------------------------------------------------------------------------- simple policies


@POLICIES.register()
class NoAugment(Policy):
    name = "none"
    description = "no augmentation"

    def apply(self, x, gen, draws):
        return x


@POLICIES.register()
class Standard(Policy):
    """Random crop of the zero-padded image back to its size, then hflip with p = 0.5.
    Draws: crop_top, crop_left (0 .. 2 pad), flip."""

    name = "standard"
    description = "random crop of the 4-px zero-padded image + horizontal flip (CIFAR convention)"
    params = {"pad": Param(4, "zero padding in pixels before the random crop", lo=0)}

    def apply(self, x, gen, draws):
        return standard_crop_flip(x, gen, draws, self.config["pad"])


@POLICIES.register()
class Simple(Policy):
    """The Keras RandAugment tutorial's "simple" pipeline: RandomFlip("horizontal"),
    RandomRotation(0.02), RandomZoom(0.2, 0.2), with Keras' bilinear sampling and reflect fill.
    Draws: flip, angle (degrees), zoom_x, zoom_y (> 1 zooms out)."""

    name = "simple"
    description = "Keras tutorial baseline: horizontal flip, rotation up to +-7.2 deg, zoom +-20%"
    params = {
        "rotation": Param(0.02, "max rotation as a fraction of a full turn", lo=0.0, hi=0.5),
        "zoom": Param(0.2, "max zoom, each axis independently (Keras height/width_factor)", lo=0.0, hi=0.9),
        "interpolation": Param("bilinear", "resampling (Keras default: bilinear)", choices=("nearest", "bilinear")),
        "fill_mode": Param("reflect", "outside the image (Keras default: reflect)", choices=("reflect", "constant")),
    }

    def apply(self, x, gen, draws):
        # Keras applies RandomFlip, RandomRotation, RandomZoom in turn; we compose their inverse
        # maps into one matrix and resample once (one interpolation instead of two).
        n, dev, c = x.shape[0], x.device, self.config
        flip = _rand((n,), gen, dev) < 0.5
        angle = (_rand((n,), gen, dev) * 2 - 1) * (c["rotation"] * 360.0)
        zoom_x = 1 + (_rand((n,), gen, dev) * 2 - 1) * c["zoom"]  # > 1 zooms out, as in Keras
        zoom_y = 1 + (_rand((n,), gen, dev) * 2 - 1) * c["zoom"]
        draws.update(flip=flip, angle=angle, zoom_x=zoom_x, zoom_y=zoom_y)
        m = geometry.rotate_matrix(angle, *x.shape[-2:])  # (N, 2, 3), no translation
        m[:, :, :2] *= torch.stack([zoom_x, zoom_y], 1).view(n, 1, 2)  # rotation @ diag(zoom)
        m[:, 0] *= torch.where(flip, -1.0, 1.0).to(m.dtype).view(n, 1)  # then flip: x -> -x
        padding = "reflect" if c["fill_mode"] == "reflect" else "zeros"
        return geometry.affine(x, m, c["interpolation"], padding)


@POLICIES.register()
class Cutout(Policy):
    """DeVries & Taylor's Cutout after crop+flip: one size x size zero square per image, its centre
    uniform over the image and the square clipped at the border. Draws: cutout_y, cutout_x."""

    name = "cutout"
    description = "crop+flip, then one zeroed square (DeVries & Taylor used 16 px on CIFAR-10, 8 on CIFAR-100)"
    params = {"size": Param(16, "side of the square hole in pixels", lo=0), "base": _BASE}

    def apply(self, x, gen, draws):
        n, h, w = x.shape[0], *x.shape[-2:]
        cy, cx = _randint(0, h, (n,), gen, x.device), _randint(0, w, (n,), gen, x.device)
        draws.update(cutout_y=cy, cutout_x=cx)
        return pixel.cutout(x, cy, cx, self.config["size"])


# ----------------------------------------------------------------------------- torchvision-style spaces
# A space maps torchvision's op name to (our op, magnitudes(num_bins, h, w) or None, signed,
# conversion of torchvision's float magnitude to our op's parameter), in torchvision's order.
# Magnitude tables are computed in float32 like torchvision's and read back as Python floats
# (float64 here), then converted as torchvision's op code does (int() for shifts and bits,
# 1 + m for enhancements, 255 m for the solarize threshold).


def _lin(hi: float, lo: float = 0.0):
    return lambda bins, h, w: torch.linspace(lo, hi, bins)


def _posterize_bins(span: int):
    return lambda bins, h, w: (8 - (torch.arange(bins) / ((bins - 1) / span))).round().int()


def _same(m):
    return m


def _enhance(m):
    return 1.0 + m


def _solarize(m):
    return 255.0 * m


def _common(shear: float, translate, rotate: float, enhance: float, posterize_span: int):
    return {
        "ShearX": ("shear_x", _lin(shear), True, _same),
        "ShearY": ("shear_y", _lin(shear), True, _same),
        "TranslateX": ("translate_x", lambda b, h, w: translate(b, w), True, torch.trunc),
        "TranslateY": ("translate_y", lambda b, h, w: translate(b, h), True, torch.trunc),
        "Rotate": ("rotate", _lin(rotate), True, _same),
        "Brightness": ("brightness", _lin(enhance), True, _enhance),
        "Color": ("color", _lin(enhance), True, _enhance),
        "Contrast": ("contrast", _lin(enhance), True, _enhance),
        "Sharpness": ("sharpness", _lin(enhance), True, _enhance),
        "Posterize": ("posterize", _posterize_bins(posterize_span), False, torch.trunc),
        "Solarize": ("solarize", _lin(0.0, 1.0), False, _solarize),
        "AutoContrast": ("autocontrast", None, False, _same),
        "Equalize": ("equalize", None, False, _same),
    }


def _autoaugment_translate(bins, size):
    return torch.linspace(0.0, 150.0 / 331.0 * size, bins)


# torchvision RandAugment: Identity first, then the AutoAugment ranges.
RANDAUGMENT_SPACE = {"Identity": ("identity", None, False, _same),
                     **_common(0.3, _autoaugment_translate, 30.0, 0.9, 4)}
# torchvision TrivialAugmentWide: the wide ranges.
TRIVIALAUGMENT_SPACE = {"Identity": ("identity", None, False, _same),
                        **_common(0.99, lambda bins, size: torch.linspace(0.0, 32.0, bins), 135.0, 0.99, 6)}
# torchvision AutoAugment: the AutoAugment ranges plus Invert (10 magnitude bins).
AUTOAUGMENT_SPACE = {**_common(0.3, _autoaugment_translate, 30.0, 0.9, 4), "Invert": ("invert", None, False, _same)}

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, as in torchvision's AutoAugmentPolicy.CIFAR10):
# 25 sub-policies of two (op, probability, magnitude bin) steps.
AUTOAUGMENT_CIFAR10 = [
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
]


def param_tables(space: dict, bins: int, h: int, w: int, device) -> tuple[Tensor, Tensor]:
    """Our op parameter for every (op, magnitude bin), unsigned and negated: two (K, bins) float64
    tensors. Unsigned ops have the same value in both; ops without a magnitude hold 0."""
    pos = torch.zeros(len(space), bins, dtype=torch.float64)
    neg = torch.zeros(len(space), bins, dtype=torch.float64)
    for k, (_, magnitudes, signed, convert) in enumerate(space.values()):
        if magnitudes is None:
            continue
        m = magnitudes(bins, h, w).to(torch.float64)  # torchvision: float(magnitudes[i])
        pos[k] = convert(m)
        neg[k] = convert(-m) if signed else convert(m)
    dtype = common._exact_dtype(torch.device(device))
    return pos.to(device=device, dtype=dtype), neg.to(device=device, dtype=dtype)


class _SpacePolicy(Policy):
    """Shared plumbing of the torchvision-style policies: op names and cached parameter tables."""

    space: dict = {}

    def tables(self, x: Tensor, bins: int) -> tuple[Tensor, Tensor]:
        key = (bins, *x.shape[-2:], x.device)
        cache = self.__dict__.setdefault("_tables", {})
        if key not in cache:
            cache[key] = param_tables(self.space, bins, *x.shape[-2:], x.device)
        return cache[key]

    @property
    def op_names(self) -> list[str]:
        return [spec[0] for spec in self.space.values()]


@POLICIES.register()
class RandAugment(_SpacePolicy):
    """torchvision's RandAugment per image: num_ops ops drawn uniformly with replacement from 14,
    all at bin `magnitude`; signed ops are negated with p = 0.5. Draws: ops, negative, params (N, num_ops)."""

    name = "randaugment"
    description = "crop+flip, then num_ops ops drawn uniformly from 14 at one magnitude (torchvision ranges)"
    params = {
        "num_ops": Param(2, "ops per image", lo=0, hi=16),
        "magnitude": Param(9, "magnitude bin (0 .. num_magnitude_bins - 1)", lo=0),
        "num_magnitude_bins": Param(31, "number of magnitude bins", lo=2, hi=1000),
        "base": _BASE,
        "interpolation": _INTERP,
    }
    space = RANDAUGMENT_SPACE

    def check(self):
        c = self.config
        if c["magnitude"] >= c["num_magnitude_bins"]:
            raise RobenchError(f"policy 'randaugment': magnitude {c['magnitude']} must be below "
                               f"num_magnitude_bins {c['num_magnitude_bins']}")

    def apply(self, x, gen, draws):
        n, dev, c = x.shape[0], x.device, self.config
        pos, neg = self.tables(x, c["num_magnitude_bins"])
        pos, neg = pos[:, c["magnitude"]], neg[:, c["magnitude"]]
        op = _randint(0, len(self.space), (n, c["num_ops"]), gen, dev)
        negative = _rand((n, c["num_ops"]), gen, dev) <= 0.5  # used by signed ops only
        param = torch.where(negative, _take(neg, op), _take(pos, op))
        draws.update(ops=op, negative=negative, params=param, op_names=self.op_names)
        return dispatch.run_slots(x, op, param, self.op_names, c["interpolation"])


@POLICIES.register()
class TrivialAugment(_SpacePolicy):
    """torchvision's TrivialAugmentWide per image: one op of 14 and one magnitude bin, both uniform;
    signed ops negated with p = 0.5. Draws: ops, bins, negative, params (N,)."""

    name = "trivialaugment"
    description = "crop+flip, then one op per image with a uniform magnitude (TrivialAugment Wide)"
    params = {
        "num_magnitude_bins": Param(31, "number of magnitude bins", lo=2, hi=1000),
        "base": _BASE,
        "interpolation": _INTERP,
    }
    space = TRIVIALAUGMENT_SPACE

    def apply(self, x, gen, draws):
        n, dev, bins = x.shape[0], x.device, self.config["num_magnitude_bins"]
        pos, neg = self.tables(x, bins)
        op = _randint(0, len(self.space), (n,), gen, dev)
        level = _randint(0, bins, (n,), gen, dev)
        negative = _rand((n,), gen, dev) <= 0.5
        index = op * bins + level
        param = torch.where(negative, _take(neg.view(-1), index), _take(pos.view(-1), index))
        draws.update(ops=op, bins=level, negative=negative, params=param, op_names=self.op_names)
        return dispatch.run_slots(x, op, param, self.op_names, self.config["interpolation"])


@POLICIES.register()
class AutoAugment(_SpacePolicy):
    """AutoAugment's CIFAR-10 policy per image: one of 25 sub-policies, each of its two steps
    applied with its probability at its magnitude bin (10 bins); signed ops negated with p = 0.5.
    Draws: subpolicy (N,), applied, negative, ops (-1 = skipped), params (N, 2)."""

    name = "autoaugment"
    description = "crop+flip, then one of AutoAugment's 25 CIFAR-10 sub-policies per image"
    params = {"base": _BASE, "interpolation": _INTERP}
    space = AUTOAUGMENT_SPACE

    def _subpolicy_tables(self, x: Tensor):
        """(25, 2) op index, probability, and parameters (unsigned, negated) of each step."""
        key = ("sub", *x.shape[-2:], x.device)
        cache = self.__dict__.setdefault("_tables", {})
        if key not in cache:
            pos, neg = self.tables(x, 10)  # torchvision uses 10 bins for AutoAugment
            names = list(self.space)
            op = torch.tensor([[names.index(s[0]) for s in sub] for sub in AUTOAUGMENT_CIFAR10], device=x.device)
            prob = torch.tensor([[s[1] for s in sub] for sub in AUTOAUGMENT_CIFAR10], dtype=pos.dtype, device=x.device)
            level = torch.tensor([[s[2] or 0 for s in sub] for sub in AUTOAUGMENT_CIFAR10], device=x.device)
            cache[key] = (op, prob, pos[op, level], neg[op, level])
        return cache[key]

    def apply(self, x, gen, draws):
        n, dev = x.shape[0], x.device
        op_table, prob, pos, neg = self._subpolicy_tables(x)
        sub = _randint(0, len(AUTOAUGMENT_CIFAR10), (n,), gen, dev)
        applied = _rand((n, 2), gen, dev) <= prob.index_select(0, sub)  # torchvision: apply if rand <= p
        negative = _rand((n, 2), gen, dev) <= 0.5
        op = torch.where(applied, op_table.index_select(0, sub), -1)
        param = torch.where(negative, neg.index_select(0, sub), pos.index_select(0, sub))
        draws.update(subpolicy=sub, applied=applied, negative=negative, ops=op, params=param,
                     op_names=self.op_names)
        return dispatch.run_slots(x, op, param, self.op_names, self.config["interpolation"])


# ----------------------------------------------------------------------------- AugMix
# The official google-research/augmix ops (augmentations.py): a level l ~ U(0.1, severity) gives
# v = l * max / 10, truncated where the official code uses int_parameter (int(l * max / 10));
# our op's parameter is offset + sign * v, the sign drawn +-1 with p = 0.5 ("random") or fixed.
# max "w" / "h" is the image size / 3 along that axis (the official IMAGE_SIZE / 3 at 32 px).
# name: (max, truncated, sign, offset), or None for ops without a parameter.
AUGMIX_OPS: dict[str, tuple | None] = {
    "autocontrast": None,
    "equalize": None,
    "posterize": (4, True, -1, 4),  # bits 4 - int(l * 4 / 10)
    "rotate": (30, True, "random", 0),  # +-int(l * 30 / 10) degrees
    "solarize": (256, True, -1, 256),  # threshold 256 - int(l * 256 / 10)
    "shear_x": (0.3, False, "random", 0),  # +-l * 0.3 / 10
    "shear_y": (0.3, False, "random", 0),
    "translate_x": ("w", True, "random", 0),  # +-int(l * (W / 3) / 10) pixels
    "translate_y": ("h", True, "random", 0),
}
# all_ops=True adds the ops that overlap the test corruptions: factor l * 1.8 / 10 + 0.1.
AUGMIX_ALL_OPS: dict[str, tuple | None] = {
    **AUGMIX_OPS, **{name: (1.8, False, 1, 0.1) for name in ("color", "contrast", "brightness", "sharpness")}
}


def augmix_tables(table: dict, h: int, w: int, device) -> tuple[Tensor, ...]:
    """Per-op (max, truncated, random sign, fixed sign, offset) as tensors indexed by op."""
    specs = [spec or (0, False, 1, 0) for spec in table.values()]
    dtype = _real(torch.device(device))
    scale = [{"w": w / 3, "h": h / 3}.get(spec[0], spec[0]) for spec in specs]
    return (torch.tensor(scale, dtype=dtype, device=device),
            torch.tensor([spec[1] for spec in specs], device=device),
            torch.tensor([spec[2] == "random" for spec in specs], device=device),
            torch.tensor([1 if spec[2] == "random" else spec[2] for spec in specs], dtype=dtype, device=device),
            torch.tensor([spec[3] for spec in specs], dtype=dtype, device=device))


@POLICIES.register()
class AugMix(Policy):
    """The official AugMix per image: `width` chains of `depth` ops (-1: 1..3 per chain), ops drawn
    with replacement, levels U(0.1, severity), signs +-1, chain weights Dirichlet(alpha), blend
    m ~ Beta(alpha, alpha); output (1 - m) x + m sum_i w_i chain_i(x) as float32 in [0, 1].
    Draws: depth (N, width), ops/levels/signs/params (N, width, max depth; ops -1 past the depth),
    weights (N, width), m (N,), op_names."""

    name = "augmix"
    description = "crop+flip, then AugMix (official code): 3 random op chains mixed with the image"
    params = {
        "severity": Param(3, "op strength; levels are drawn from U(0.1, severity)", lo=1, hi=10),
        "width": Param(3, "number of chains", lo=1, hi=16),
        "depth": Param(-1, "ops per chain; -1 draws 1..3 per chain", lo=-1, hi=16),
        "alpha": Param(1.0, "Dirichlet (chain weights) and Beta (blend) parameter", lo=1e-3),
        "all_ops": Param(False, "also use color/contrast/brightness/sharpness"),
        "base": _BASE,
        "interpolation": Param("bilinear", "resampling of rotate/shear (official: PIL bilinear)",
                               choices=("nearest", "bilinear")),
    }

    def check(self):
        if self.config["depth"] == 0:
            raise RobenchError("policy 'augmix': depth must be -1 (random 1..3) or at least 1")

    def apply(self, x, gen, draws):
        c, (n, _, h, w), dev = self.config, x.shape, x.device
        table = AUGMIX_ALL_OPS if c["all_ops"] else AUGMIX_OPS
        names, width = list(table), c["width"]
        max_depth = c["depth"] if c["depth"] > 0 else 3
        if c["depth"] > 0:
            depth = torch.full((n, width), c["depth"], device=dev)
        else:
            depth = _randint(1, 4, (n, width), gen, dev)
        op = _randint(0, len(names), (n, width, max_depth), gen, dev)
        op = torch.where(torch.arange(max_depth, device=dev) < depth.unsqueeze(-1), op, -1)
        level = 0.1 + (c["severity"] - 0.1) * _rand((n, width, max_depth), gen, dev)
        sign = torch.where(_rand((n, width, max_depth), gen, dev) < 0.5, -1.0, 1.0).to(level.dtype)
        key = (c["all_ops"], h, w, dev)
        cache = self.__dict__.setdefault("_tables", {})
        if key not in cache:
            cache[key] = augmix_tables(table, h, w, dev)
        index = op.clamp(min=0)
        scale, truncated, random_sign, fixed_sign, offset = (_take(t, index) for t in cache[key])
        v = level * scale / 10
        param = offset + torch.where(random_sign, sign, fixed_sign) * torch.where(truncated, v.trunc(), v)
        weights = dirichlet(c["alpha"], (n, width), gen, dev)
        m = beta(c["alpha"], c["alpha"], (n,), gen, dev)
        draws.update(depth=depth, ops=op, levels=level, signs=sign, params=param, weights=weights, m=m,
                     op_names=names)

        # All chains form one batch (chain-major), worked on in place in a buffer of this thread's
        # workspace (see workspace.py: it and the float copy below are free again when the block
        # ends); slot s applies each chain's s-th op. Rotations and translations by 0 (low levels) are skipped,
        # as they change nothing.
        if ("moves", *key) not in cache:  # made once: a fresh tensor per call is a host-to-device copy
            cache[("moves", *key)] = torch.tensor([name in ("rotate", "translate_x", "translate_y") for name in names],
                                                  device=dev)
        moves = cache[("moves", *key)]
        still = _take(moves, index) & (param == 0)  # (isin is 50x slower)
        run = torch.where(still, -1, op)
        with thread_workspace().frame() as frame:
            chains = frame.empty((width, n, 3, h, w), torch.uint8, dev)
            chains.copy_(x.unsqueeze(0).expand(width, n, 3, h, w))
            dispatch.run_slots(
                chains.view(width * n, 3, h, w),
                run.transpose(0, 1).reshape(width * n, max_depth),
                param.transpose(0, 1).reshape(width * n, max_depth),
                names,
                c["interpolation"],
                nearest={"translate_x", "translate_y"},
                overwrite=True,
            )

            # Official: out = (1 - m) * image + m * sum_i w_i * chain_i, in float32 on [0, 1] images
            # (the official code normalises first; the mix is affine with weights summing to 1, so
            # that commutes). The 1/255 is folded into the weights.
            k0 = ((1 - m) / 255).float().view(n, 1, 1, 1)
            k = (m.view(n, 1) * weights / 255).float().t().reshape(width, n, 1, 1, 1)
            out = torch.empty(x.shape, dtype=torch.float32, device=dev).copy_(x).mul_(k0)
            term = frame.empty(x.shape, torch.float32, dev)
            for i in range(width):
                out.addcmul_(term.copy_(chains[i]), k[i])
        return out


# ----------------------------------------------------------------------------- public API

def make_policy(name: str, **params) -> Policy:
    """The policy `name` configured with `params` (validated; RobenchError if unknown or bad).

    The result is callable as `policy(images, generator=None, seed=None, return_params=False,
    dtype=None)`; its resolved parameters are `policy.config`.
    """
    return POLICIES.get(name).factory(**params)
