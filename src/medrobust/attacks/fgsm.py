"""The fast gradient sign method (FGSM), its L2 variant, and the random-start form of fast adversarial training.

Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015; Wong et al., "Fast is better
than free", ICLR 2020 (random start, step 1.25·ε).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medrobust.attacks.ascent import Iterate, Objective, Observer, ProjectedStep, gradient_ascent
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
from medrobust.geometry import Norm, check_norm, per_sample_eps, random_start
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
        seen: list[Iterate] = []
        with model_mode(model, self.train_mode):
            x_adv = fgsm_point(
                model,
                x,
                y,
                e,
                self.norm,
                self.rel_step,
                task=task,
                random=self.random_start,
                generator=generator,
                objective=lambda o, t: objective(task, o, t, self.loss, self.targeted),
                observe=seen.append,
            )
        out = seen[-1].output
        return AttackResult(x_adv, success(task, out, y, self.targeted), out, 1)


def fgsm_point(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: Tensor,
    norm: Norm,
    rel_step: float,
    *,
    task: Task,
    random: bool = False,
    generator: torch.Generator | None = None,
    objective: Objective | None = None,
    observe: Observer | None = None,
) -> Tensor:
    """One projected gradient step of ``rel_step·ε`` from ``x`` (or a uniform point of the ball, ``random``).

    The model runs in its current mode. With an ``observe``-r the step's result is forwarded and shown to it (the
    :class:`FGSM` attack); without one no forward is spent on it (fast adversarial training). ``objective``
    defaults to ``task.loss``.

    Shape:
        - x: ``(N, *)``; eps: ``(N,)``; returns ``(N, *)``.
    """
    start = random_start(x, eps, norm, generator) if random else x
    run = gradient_ascent(
        model,
        start,
        y,
        objective or task.loss,
        ProjectedStep.around(x, eps, eps * rel_step, norm, cache_box=False),
        steps=1,
        observe=observe,
        score_final=observe is not None,
    )
    return run.x
