"""The attack interface, its result, the attack registry and the helpers every attack shares.

An attack is a small frozen config called as ``attack(model, x, y, task=..., eps=..., generator=...)``; the
model is an argument, so one config serves a model that changes during training. Attacks differentiate with
``torch.autograd.grad`` with respect to the input only (parameter ``.grad`` and ``requires_grad`` are never
touched) and restore every module's train/eval flag, also on exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from medrobust.errors import DataError
from medrobust.geometry import check_generator, check_images, per_sample_eps, view
from medrobust.registry import Registry
from medrobust.tasks.base import Task

LossName = Literal["ce", "margin"]
LOSSES: tuple[str, ...] = ("ce", "margin")


@dataclass(frozen=True)
class AttackResult:
    """What an attack returns.

    Attributes:
        x_adv: adversarial inputs in [0, 1], within ε of ``x`` per sample.
        fooled: bool, ``not task.correct(model(x_adv), y)`` (targeted attacks: ``task.correct(model(x_adv), y)``,
            i.e. the model predicts the target).
        output: model output at ``x_adv`` (detached), so callers need no extra forward pass.
        steps_run: gradient steps (or noise draws) actually run, summed over restarts and losses.
        details: attack-specific extras (AutoAttack: ``broken_by`` ``(N,)``, the index of the member that broke
            each point or −1, and ``members``, their names).

    Shape:
        - x_adv: ``(N, *)`` like ``x``.
        - fooled: ``(N,)``.
        - output: ``(N, *)`` like the model output.
    """

    x_adv: Tensor
    fooled: Tensor
    output: Tensor
    steps_run: int
    details: dict[str, Any] = field(default_factory=dict)


class Attack(Protocol):
    """An attack config: ``attack(model, x, y, task=..., eps=..., generator=...) -> AttackResult``."""

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        task: Task,
        eps: float | Tensor,
        generator: torch.Generator | None = None,
    ) -> AttackResult: ...


ATTACKS: Registry[Attack] = Registry("attack")


def check_batch(x: Tensor, y: Tensor, task: Task, generator: torch.Generator | None = None) -> None:
    """Validate an attack's inputs: images in [0, 1], matching targets, generator device."""
    check_images(x)
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{x.shape[0]} inputs but {y.shape[0]} targets; pass one target per input")
    task.check_target(y)
    check_generator(generator, x)


def prepare(
    x: Tensor, y: Tensor, task: Task, eps: float | Tensor, generator: torch.Generator | None, rows: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate an attack's inputs and return ``x`` detached, ε per sample ``(N,)`` and the rows to attack ``(M,)``
    (all rows when ``rows`` is None); the prologue of every attack that takes ``rows``."""
    check_batch(x, y, task, generator)
    e = per_sample_eps(eps, x)
    picked = torch.arange(x.shape[0], device=x.device) if rows is None else rows
    return x.detach(), e, picked


def objective(task: Task, output: Tensor, y: Tensor, loss: str, targeted: bool) -> Tensor:
    """Per-sample quantity the attack maximises ``(N,)``: ``task.loss`` or ``task.margin``, negated if targeted."""
    value = task.loss(output, y) if loss == "ce" else task.margin(output, y)
    return -value if targeted else value


def success(task: Task, output: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """Bool ``(N,)``: the attack succeeded (untargeted: wrong; targeted: predicts ``y``)."""
    right = task.correct(output, y)
    return right if targeted else ~right


@dataclass
class WorstCase:
    """Per-sample best attack point so far: a fooled point beats any other, then the higher score wins.

    Shape:
        - x: ``(N, *)``; out: ``(N, *)``; fooled, score: ``(N,)``.
    """

    x: Tensor
    out: Tensor
    fooled: Tensor
    score: Tensor

    def update(self, ids: Tensor | None, x: Tensor, out: Tensor, fooled: Tensor, score: Tensor) -> None:
        """Merge candidates for rows ``ids`` (all rows when ``None``) where they are worse for the model."""
        if ids is None:
            take = _better(fooled, score, self.fooled, self.score)
            self.x = torch.where(view(take, x), x, self.x)
            self.out = torch.where(view(take, out), out, self.out)
            self.fooled = torch.where(take, fooled, self.fooled)
            self.score = torch.where(take, score, self.score)
            return
        take = _better(fooled, score, self.fooled[ids], self.score[ids])
        rows = ids[take]
        self.x[rows] = x[take]
        self.out[rows] = out[take]
        self.fooled[rows] = fooled[take]
        self.score[rows] = score[take]

    def result(self, steps_run: int) -> AttackResult:
        """The tracked points as an :class:`AttackResult`."""
        return AttackResult(self.x.detach(), self.fooled.clone(), self.out.detach(), steps_run)


def _better(fooled: Tensor, score: Tensor, best_fooled: Tensor, best_score: Tensor) -> Tensor:
    return (fooled & ~best_fooled) | ((fooled == best_fooled) & (score > best_score))
