"""Batch mixers: mixup, cutmix and ricap, returning float images in [0, 1] and soft targets.

`make_mixer(name, num_classes, **params)` returns `mixer(images, targets, generator=None, seed=None)`
-> (images float32 in [0, 1], soft targets (N, num_classes) float32 whose rows sum to 1). Images
are a batch (N, 3, H, W), uint8 (divided by 255) or float in [0, 1] (mixed as they are, e.g.
AugMix views); targets are class indices (N,) or soft (N, K) rows (see `robench.images`).
`mixer(..., return_params=True)` also returns the draws (lambda, partner permutation, boxes).

Per-batch or per-sample: the papers and their CIFAR code draw ONE lambda (one box, one RICAP
boundary) per batch, shared by all its images, and mix each image with a partner from one random
permutation. That is our default (`per_sample=False`), because robench's recipes reproduce the
published numbers and faithfulness comes first (docs/faithfulness.md); `per_sample=True` draws a lambda (box,
boundary, and for cutmix the coin) for every image, a stronger, lower-variance variant.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import RobenchError
from ..images import generator_for
from ..registry import Param, Registry, resolve_params
from .policies import _rand, _randint, beta

_PER_SAMPLE = Param(False, "draw lambda (box, boundary) per image instead of once per batch")
MIXERS = Registry("mixer")


class Mixer:
    """A configured mixer. Subclasses set name, description, params and implement `mix`."""

    name: str = ""
    description: str = ""
    params: dict[str, Param] = {}

    def __init__(self, num_classes: int, **given):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise RobenchError(f"mixer '{self.name}': num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.config = resolve_params(f"mixer '{self.name}'", self.params, given)

    def mix(self, x: Tensor, y: Tensor, gen, draws: dict) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def __call__(self, images: Tensor, targets: Tensor, generator: torch.Generator | None = None,
                 seed: int | None = None, return_params: bool = False):
        ok = (isinstance(images, Tensor) and isinstance(targets, Tensor) and images.ndim == 4
              and images.shape[1] == 3 and targets.ndim in (1, 2) and images.shape[0] == targets.shape[0]
              and (images.dtype == torch.uint8 or images.is_floating_point()))
        if not ok:
            raise RobenchError(f"mixer '{self.name}': images uint8 or float (N, 3, H, W) and targets (N,) or (N, K) "
                               f"expected, got {getattr(images, 'dtype', type(images).__name__)} "
                               f"{tuple(getattr(images, 'shape', ()))} and {tuple(getattr(targets, 'shape', ()))}")
        generator = generator_for(images.device, generator, seed, f"mixer '{self.name}'")
        if targets.ndim == 1:
            soft = torch.nn.functional.one_hot(targets.long(), self.num_classes).float()
        else:
            soft = targets.float()
        draws: dict = {}
        x, y = self.mix(images, soft, generator, draws) if len(images) else (images, soft)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        return (x, y, draws) if return_params else (x, y)

    def _lam_shape(self, n: int) -> tuple[int, ...]:
        return (n,) if self.config["per_sample"] else (1,)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name}(num_classes={self.num_classes}, {args})"


def _col(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


@MIXERS.register()
class NoMix(Mixer):
    name = "none"
    description = "no mixing (float images, one-hot targets)"

    def mix(self, x, y, gen, draws):
        return x, y


@MIXERS.register()
class Mixup(Mixer):
    name = "mixup"
    description = "mixup (Zhang et al.): blend with a permuted partner, lambda ~ Beta(alpha, alpha)"
    params = {"alpha": Param(1.0, "Beta parameter; 0 disables mixing", lo=0.0), "per_sample": _PER_SAMPLE}

    def mix(self, x, y, gen, draws):
        n, dev, alpha = x.shape[0], x.device, self.config["alpha"]
        lam = beta(alpha, alpha, self._lam_shape(n), gen, dev) if alpha > 0 else torch.ones(1, dtype=torch.float64, device=dev)
        perm = torch.randperm(n, generator=gen, device=dev)
        draws.update(lam=lam.expand(n), perm=perm)
        lam = lam.float()
        xf = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        mixed = xf * _col(lam) + xf[perm] * _col(1 - lam)
        return mixed, y * lam.view(-1, 1) + y[perm] * (1 - lam).view(-1, 1)


@MIXERS.register()
class CutMix(Mixer):
    name = "cutmix"
    description = "CutMix (Yun et al.): paste a box of a permuted partner; applied with probability prob"
    params = {
        "alpha": Param(1.0, "Beta parameter of the kept area", lo=1e-3),
        "prob": Param(0.5, "probability of mixing a batch (an image when per_sample)", lo=0.0, hi=1.0),
        "per_sample": _PER_SAMPLE,
        "keep_larger": Param(False, "lam = max(lam, 1 - lam) before cutting, so the pasted box is never the "
                                    "larger part (the CutMix blog's variant)"),
    }

    def mix(self, x, y, gen, draws):
        (n, _, h, w), dev, c = x.shape, x.device, self.config
        shape = self._lam_shape(n)
        applied = _rand(shape, gen, dev) < c["prob"]
        lam = beta(c["alpha"], c["alpha"], shape, gen, dev)
        if c["keep_larger"]:
            lam = torch.maximum(lam, 1 - lam)
        perm = torch.randperm(n, generator=gen, device=dev)
        # The official box: sides int(W * sqrt(1 - lam)), centre uniform, clipped at the border.
        cut = (1 - lam).sqrt()
        cut_w, cut_h = (w * cut).long(), (h * cut).long()
        cx, cy = _randint(0, w, shape, gen, dev), _randint(0, h, shape, gen, dev)
        x1, x2 = (cx - cut_w // 2).clamp(0, w), (cx + cut_w // 2).clamp(0, w)
        y1, y2 = (cy - cut_h // 2).clamp(0, h), (cy + cut_h // 2).clamp(0, h)
        x2, y2 = torch.where(applied, x2, x1), torch.where(applied, y2, y1)  # no box when not applied
        kept = 1 - ((x2 - x1) * (y2 - y1)).double() / (h * w)  # lambda recomputed from the clipped box
        draws.update(applied=applied.expand(n), lam=kept.expand(n), perm=perm, box=torch.stack(
            [t.expand(n) for t in (y1, x1, y2, x2)], 1))
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        inside = ((rows >= y1.view(-1, 1, 1)) & (rows < y2.view(-1, 1, 1))
                  & (cols >= x1.view(-1, 1, 1)) & (cols < x2.view(-1, 1, 1)))
        mixed = torch.where(inside.unsqueeze(1), x[perm], x)
        kept = kept.float().view(-1, 1)
        return mixed, y * kept + y[perm] * (1 - kept)


@MIXERS.register()
class Ricap(Mixer):
    name = "ricap"
    description = "RICAP (Takahashi et al.): patch four random crops of permuted images, beta = 0.3"
    params = {"beta": Param(0.3, "Beta parameter of the boundary point", lo=1e-3), "per_sample": _PER_SAMPLE}

    def mix(self, x, y, gen, draws):
        (n, c, h, w), dev, b = x.shape, x.device, self.config["beta"]
        shape = self._lam_shape(n)
        # boundary point (bw, bh): quadrants (bw, bh), (W - bw, bh), (bw, H - bh), (W - bw, H - bh)
        bw = (w * beta(b, b, shape, gen, dev)).round().long().expand(n)
        bh = (h * beta(b, b, shape, gen, dev)).round().long().expand(n)
        qw = torch.stack([bw, w - bw, bw, w - bw], 1)  # (N, 4)
        qh = torch.stack([bh, bh, h - bh, h - bh], 1)
        # per quadrant: a permutation of the batch and a crop offset uniform over the valid range
        perms = torch.stack([torch.randperm(n, generator=gen, device=dev) for _ in range(4)], 1)
        u = _rand((shape[0], 2, 4), gen, dev).expand(n, 2, 4)
        ox = (u[:, 0] * (w - qw + 1)).long()  # == randint(0, W - qw + 1)
        oy = (u[:, 1] * (h - qh + 1)).long()
        area = (qw * qh).double() / (h * w)
        draws.update(boundary=torch.stack([bh, bw], 1), perms=perms, offsets=torch.stack([oy, ox], -1), areas=area)

        # Output pixel (i, j) lies in quadrant q = 2 [i >= bh] + [j >= bw]; it reads pixel
        # (oy_q + i - top_q, ox_q + j - left_q) of image perms[:, q]: one gather for the batch.
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        below, right = rows >= bh.view(-1, 1, 1), cols >= bw.view(-1, 1, 1)  # (N, H, 1), (N, 1, W)
        q = below.long() * 2 + right.long()  # (N, H, W)
        src_row = oy.gather(1, q.view(n, -1)).view(n, h, w) + rows - below.long() * bh.view(-1, 1, 1)
        src_col = ox.gather(1, q.view(n, -1)).view(n, h, w) + cols - right.long() * bw.view(-1, 1, 1)
        src_img = perms.gather(1, q.view(n, -1)).view(n, h, w)
        index = (src_img * (h * w) + src_row * w + src_col).view(-1)
        flat = x.transpose(0, 1).reshape(c, -1)  # (C, N*H*W)
        mixed = flat.index_select(1, index).view(c, n, h, w).transpose(0, 1).contiguous()
        soft = (area.float().unsqueeze(-1) * y[perms]).sum(1)
        return mixed, soft


def make_mixer(name: str, num_classes: int, **params) -> Mixer:
    """The mixer `name` for `num_classes` classes, configured with `params` (RobenchError if bad).

    The result is callable as `mixer(images, targets, generator=None, seed=None,
    return_params=False)`; its resolved parameters are `mixer.config`.
    """
    return MIXERS.get(name).factory(num_classes, **params)
