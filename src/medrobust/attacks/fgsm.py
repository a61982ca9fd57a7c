"""The fast gradient sign method (FGSM), its L2 variant, and the random-start form of fast adversarial training.

Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015; Wong et al., "Fast is better
than free", ICLR 2020 (random start, step 1.25·ε).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medrobust.attacks.base import (
    ATTACKS,
    LOSSES,
    AttackResult,
    LossName,
    check_batch,
    objective,
    success,
)
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, check_norm, direction, per_sample_eps, project, random_start, view
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task


@ATTACKS.register("fgsm", help="fast gradient sign method (Goodfellow et al. 2015), L∞ or L2")
@dataclass(frozen=True)
class FGSM:
    """One gradient step: ``x + ε·sign(∇ₓL)`` (L∞) or ``x + ε·∇ₓL/‖∇ₓL‖₂`` (L2), clamped to [0, 1].

    Args:
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"`` (``task.loss``) or ``"margin"`` (``task.margin``).
        targeted: ``y`` holds target labels; step down the loss towards them.
        random_start: start from a uniform point of the ball (Wong et al.'s fast adversarial training).
        rel_step: step length as a multiple of ε (Wong et al.: 1.25); the result is projected onto the ball.
        train_mode: run the model in train mode during the attack; default eval mode.

    Shape:
        - x: ``(N, *)`` in [0, 1]; y: targets of ``task``; eps: float or ``(N,)``.
    """

    norm: Norm = "linf"
    loss: LossName = "ce"
    targeted: bool = False
    random_start: bool = False
    rel_step: float = 1.0
    train_mode: bool = False

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown FGSM loss {self.loss!r}; use 'ce' or 'margin'")
        if not self.rel_step > 0:
            raise ConfigError(f"rel_step must be > 0; got {self.rel_step}")

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        task: Task,
        eps: float | Tensor,
        generator: torch.Generator | None = None,
    ) -> AttackResult:
        """Attack ``model`` at ``(x, y)`` with radius ``eps`` (one gradient, one extra forward pass)."""
        check_batch(x, y, task, generator)
        e = per_sample_eps(eps, x)
        x = x.detach()
        start = random_start(x, e, self.norm, generator) if self.random_start else x
        with model_mode(model, self.train_mode):
            with torch.enable_grad():
                xr = start.clone().requires_grad_(True)
                obj = objective(task, model(xr), y, self.loss, self.targeted)
                (grad,) = torch.autograd.grad(obj.sum(), xr)
            x_adv = project(start + view(e * self.rel_step, x) * direction(grad, self.norm), x, e, self.norm)
            with torch.no_grad():
                out = model(x_adv)
        return AttackResult(x_adv, success(task, out, y, self.targeted), out, 1)
