"""The training loss: cross-entropy on soft targets, with optional label smoothing, AugMix's
Jensen-Shannon consistency and distillation, assembled once from the config by `Objective`.

    objective = Objective.from_config(cfg)
    loss = objective(logits, targets, teacher_logits)

One code path serves every combination, so no term can be forgotten on one branch:

    loss = (1 - a) * CE(z, smooth(t)) + a * T^2 * KL(softmax(z_teacher / T) || softmax(z / T))   [distillation]
           + lambda * JSD(z, z_aug1, z_aug2)                                                     [JSD]

z are the logits of the first (clean) view; without distillation a = 0; without JSD there is one
view. Label smoothing is applied exactly once, here (it is linear, so it composes with mixed targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(labels, num_classes).float()


def smooth(soft_targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Label smoothing, (1 - eps) * t + eps / K. Linear, so it composes with mixed targets in any order."""
    if epsilon == 0:
        return soft_targets
    return soft_targets * (1 - epsilon) + epsilon / soft_targets.shape[1]


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k t_k log softmax(z)_k (equals F.cross_entropy for one-hot t)."""
    return -(soft_targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def jsd_consistency(logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor) -> torch.Tensor:
    """AugMix's Jensen-Shannon term: mean over the three views of KL(p_i || M), M clamped to [1e-7, 1].

    The objective multiplies it by lambda (12 in the paper) and adds the clean cross-entropy.
    """
    probs = [F.softmax(z.float(), dim=1) for z in (logits_clean, logits_aug1, logits_aug2)]
    log_mixture = torch.clamp((probs[0] + probs[1] + probs[2]) / 3, 1e-7, 1).log()
    kls = [F.kl_div(log_mixture, p, reduction="batchmean") for p in probs]
    return (kls[0] + kls[1] + kls[2]) / 3


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target term, T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) (T^2 keeps its
    gradients on the scale of the cross-entropy's)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.softmax(teacher_logits.float() / t, dim=1),
                  reduction="batchmean")
    return t * t * kl


def distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, soft_targets: torch.Tensor,
                 temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(teacher || student at T) + (1 - alpha) * CE(student, targets)."""
    return (alpha * distillation_kl(student_logits, teacher_logits, temperature)
            + (1 - alpha) * soft_cross_entropy(student_logits, soft_targets))


@dataclass(frozen=True)
class Objective:
    """The configured training loss (see the module docstring for the formula)."""

    label_smoothing: float = 0.0
    jsd_lambda: float | None = None  # None: no JSD term, one view
    kd_temperature: float | None = None  # None: no distillation
    kd_alpha: float = 0.0

    @classmethod
    def from_config(cls, cfg) -> "Objective":
        distil = cfg.teacher is not None
        return cls(label_smoothing=cfg.label_smoothing, jsd_lambda=cfg.jsd_lambda if cfg.jsd else None,
                   kd_temperature=cfg.kd_temperature if distil else None, kd_alpha=cfg.kd_alpha if distil else 0.0)

    @property
    def views(self) -> int:
        """How many views of each image the model sees per step: 3 with JSD (clean, two AugMix), else 1."""
        return 3 if self.jsd_lambda is not None else 1

    @property
    def needs_teacher(self) -> bool:
        return self.kd_temperature is not None

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
        """logits (views * N, K), view-major; targets (N, K) soft, unsmoothed; teacher_logits (N, K)
        on the first view's images (needed exactly when distilling)."""
        if (teacher_logits is None) == self.needs_teacher:
            raise ValueError("teacher logits are needed exactly when the objective distils")
        views = logits.chunk(self.views) if self.views > 1 else (logits,)
        clean = views[0]
        loss = soft_cross_entropy(clean, smooth(targets, self.label_smoothing))
        if self.needs_teacher:
            loss = (1 - self.kd_alpha) * loss + self.kd_alpha * distillation_kl(clean, teacher_logits, self.kd_temperature)
        if self.jsd_lambda is not None:
            loss = loss + self.jsd_lambda * jsd_consistency(*views)
        return loss
