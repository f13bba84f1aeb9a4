"""Losses on soft targets: cross-entropy, label smoothing, AugMix's JSD consistency, distillation."""

from __future__ import annotations

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

    The caller multiplies it by lambda (12 in the paper) and adds the clean cross-entropy.
    """
    probs = [F.softmax(z.float(), dim=1) for z in (logits_clean, logits_aug1, logits_aug2)]
    log_mixture = torch.clamp((probs[0] + probs[1] + probs[2]) / 3, 1e-7, 1).log()
    kls = [F.kl_div(log_mixture, p, reduction="batchmean") for p in probs]
    return (kls[0] + kls[1] + kls[2]) / 3


def distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, soft_targets: torch.Tensor,
                 temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al.: alpha * T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) + (1 - alpha) * CE(z_s, y)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.softmax(teacher_logits.float() / t, dim=1),
                  reduction="batchmean")
    return alpha * t * t * kl + (1 - alpha) * soft_cross_entropy(student_logits, soft_targets)
