"""Optimizer registry (sgd, adamw, adabound) and the per-batch cosine schedule."""

from __future__ import annotations

import math

import torch

from robench.registry import Param, Registry


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


OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("sgd", "SGD with Nesterov momentum 0.9 (the AugMix recipe)", params={
    "lr": Param(0.1, "peak learning rate", lo=0.0),
    "momentum": Param(0.9, "momentum", lo=0.0, hi=1.0),
    "nesterov": Param(True, "Nesterov momentum"),
})
def _sgd(params, lr, weight_decay, momentum, nesterov):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                           weight_decay=weight_decay)


@OPTIMIZERS.register("adamw", "AdamW (decoupled weight decay)", params={
    "lr": Param(1e-3, "peak learning rate", lo=0.0),
})
def _adamw(params, lr, weight_decay):
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adabound", "AdaBound: Adam with step sizes bounded towards final_lr", params={
    "lr": Param(1e-3, "peak learning rate (Adam's step size)", lo=0.0),
    "final_lr": Param(0.1, "the SGD-like rate the bounds converge to", lo=0.0),
    "gamma": Param(1e-3, "how fast the bounds converge", lo=0.0),
})
def _adabound(params, lr, weight_decay, final_lr, gamma):
    return AdaBound(params, lr=lr, weight_decay=weight_decay, final_lr=final_lr, gamma=gamma)


def make_optimizer(name: str, params, lr: float | None, weight_decay: float, **options) -> torch.optim.Optimizer:
    """The optimizer `name` over `params`; `lr` None means the optimizer's default."""
    given = dict(options, **({"lr": lr} if lr is not None else {}))
    return OPTIMIZERS.get(name).factory(params, weight_decay=weight_decay, **OPTIMIZERS.params(name, given))


def default_lr(name: str) -> float:
    return OPTIMIZERS.get(name).params["lr"].default


def cosine_schedule(optimizer, total_steps: int, min_lr: float = 0.0):
    """Cosine from each group's lr down to min_lr over total_steps, stepped once per batch."""

    def factor(step: int, base: float) -> float:
        progress = min(step / max(1, total_steps), 1.0)
        return (min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / base

    bases = [g["lr"] for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [lambda s, b=b: factor(s, b) for b in bases])
