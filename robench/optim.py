"""Optimizer registry (sgd, adamw, adabound) and the per-batch cosine schedule."""

from __future__ import annotations

import math

import torch

from robench.errors import unknown_name


class AdaBound(torch.optim.Optimizer):
    """AdaBound (Luo et al., ICLR 2019): Adam whose per-parameter step size is clipped to bounds that
    converge to an SGD-like final_lr: [final_lr (1 - 1/(gamma t + 1)), final_lr (1 + 1/(gamma t))].

    final_lr follows the learning-rate schedule: it is scaled by the group's current lr / initial lr.
    Weight decay is L2 added to the gradient, as in the paper's algorithm.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), final_lr=0.1, gamma=1e-3, eps=1e-8, weight_decay=0.0):
        defaults = dict(lr=lr, betas=betas, final_lr=final_lr, gamma=gamma, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            final_lr = group["final_lr"] * group["lr"] / group["initial_lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                lower = final_lr * (1 - 1 / (group["gamma"] * t + 1))
                upper = final_lr * (1 + 1 / (group["gamma"] * t))
                rate = (step_size / (exp_avg_sq.sqrt() + group["eps"])).clamp_(lower, upper)
                p.sub_(rate * exp_avg)
        return loss


def _sgd(params, lr, weight_decay, momentum=0.9, nesterov=True, **_):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


def _adamw(params, lr, weight_decay, **_):
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _adabound(params, lr, weight_decay, final_lr=0.1, gamma=1e-3, **_):
    return AdaBound(params, lr=lr, weight_decay=weight_decay, final_lr=final_lr, gamma=gamma)


# name -> (factory, default learning rate, description)
OPTIMIZERS = {
    "sgd": (_sgd, 0.1, "SGD with Nesterov momentum 0.9 (the AugMix recipe)"),
    "adamw": (_adamw, 1e-3, "AdamW (decoupled weight decay)"),
    "adabound": (_adabound, 1e-3, "AdaBound: Adam with step sizes bounded towards final_lr"),
}


def make_optimizer(name: str, params, lr: float | None, weight_decay: float, **options) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    factory, default_lr, _ = OPTIMIZERS[name]
    return factory(params, lr=default_lr if lr is None else lr, weight_decay=weight_decay, **options)


def default_lr(name: str) -> float:
    if name not in OPTIMIZERS:
        raise unknown_name("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name][1]


def cosine_schedule(optimizer, total_steps: int, min_lr: float = 0.0):
    """Cosine from each group's lr down to min_lr over total_steps, stepped once per batch."""

    def factor(step: int, base: float) -> float:
        progress = min(step / max(1, total_steps), 1.0)
        return (min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / base

    bases = [g["lr"] for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [lambda s, b=b: factor(s, b) for b in bases])
