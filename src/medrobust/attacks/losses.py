"""Attack losses for every task: cross-entropy, the CW margin, DLR and its targeted form, and their stand-ins.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks",
ICML 2020 (DLR loss). DLR is defined for ≥ 3 classes and its targeted form for ≥ 4; medical tasks are often
binary (one logit), multi-label or dense, where AutoAttack fails with an opaque ``IndexError``. Here:

- ``"dlr"`` on a multi-class task with K ≥ 3 is ``−(z_y − max_{j≠y} z_j) / (z_π1 − z_π3)``; on every other task
  (binary with one or two logits, multi-label, segmentation, landmarks) it is the task's margin divided by the
  magnitude of its clean value, ``task.margin(f(x'), y) / (|task.margin(f(x), y)| + 1e-12)``: positive exactly
  when wrong, and invariant to a positive rescaling of the outputs, which is the property DLR is chosen for.
- targeted DLR towards class ``t`` is ``−(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4))`` for K ≥ 4. For K = 3 every
  denominator built from the sorted logits can contain ``z_t`` and make the loss constant (−1 whenever ``t`` is the
  lowest class: zero gradient), so the stand-in is ``−(z_y − z_t) / (z_π1 − z_π3)`` with the denominator taken
  at the clean input, a constant per sample.

Every loss is a per-sample ``(N,)`` tensor that the attack maximises.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from medrobust.errors import ConfigError
from medrobust.tasks.base import Task
from medrobust.tasks.classification import ClassificationTask

__all__ = ["APGD_LOSSES", "AttackLoss", "dlr", "dlr_targeted", "is_multiclass", "top_other_classes"]

APGD_LOSSES: tuple[str, ...] = ("ce", "margin", "dlr")
TINY = 1e-12


def is_multiclass(task: Task) -> bool:
    """True for a softmax classification task (targets are class indices; logits ``(N, K)``)."""
    return isinstance(task, ClassificationTask) and task.kind != "multilabel" and not task.single_logit


def dlr(z: Tensor, y: Tensor) -> Tensor:
    """Untargeted DLR ``(N,)`` of logits ``z`` ``(N, K ≥ 3)``; > 0 exactly when misclassified.

    Examples:
        >>> dlr(torch.tensor([[3.0, 1.0, 0.0]]), torch.tensor([0]))
        tensor([-0.6667])
    """
    ranked = z.sort(dim=1, descending=True).values
    true = z.gather(1, y.long().reshape(-1, 1)).squeeze(1)
    other = z.scatter(1, y.long().reshape(-1, 1), float("-inf")).amax(dim=1)
    return -(true - other) / (ranked[:, 0] - ranked[:, 2] + TINY)


def dlr_targeted(z: Tensor, y: Tensor, target: Tensor, clean_range: Tensor | None = None) -> Tensor:
    """Targeted DLR ``(N,)`` towards class ``target`` (``(N, K ≥ 4)`` logits; K = 3 needs ``clean_range``).

    ``clean_range``: ``z_π1 − z_π3`` at the clean input ``(N,)``, the denominator for K = 3.

    Examples:
        >>> dlr_targeted(torch.tensor([[3.0, 1.0, 0.0, -1.0]]), torch.tensor([0]), torch.tensor([2]))
        tensor([-0.8571])
    """
    true = z.gather(1, y.long().reshape(-1, 1)).squeeze(1)
    aim = z.gather(1, target.long().reshape(-1, 1)).squeeze(1)
    if z.shape[1] < 4:
        if clean_range is None:
            raise ConfigError("targeted DLR on 3 classes needs the clean logit range (clean_range)")
        return -(true - aim) / (clean_range + TINY)
    ranked = z.sort(dim=1, descending=True).values
    return -(true - aim) / (ranked[:, 0] - 0.5 * (ranked[:, 2] + ranked[:, 3]) + TINY)


def top_other_classes(clean: Tensor, y: Tensor, k: int) -> Tensor:
    """The ``k`` highest-scoring classes other than ``y`` per sample, ``(N, k)``, best first.

    Examples:
        >>> top_other_classes(torch.tensor([[0.1, 2.0, 1.0, 3.0]]), torch.tensor([3]), 2)
        tensor([[1, 2]])
    """
    masked = clean.float().scatter(1, y.long().reshape(-1, 1), float("-inf"))
    return masked.argsort(dim=1, descending=True)[:, :k]


@dataclass(frozen=True)
class AttackLoss:
    """A per-sample attack objective over the rows of one batch: ``loss(output, rows) -> (M,)``.

    ``rows`` index the batch the loss was built for, so the iteration core can pass the subset still running.

    Args:
        task: the task (its loss, margin and output layout).
        name: ``"ce"`` (``task.loss``), ``"margin"`` (``task.margin``) or ``"dlr"`` (see the module docstring).
        y: targets of the batch.
        clean_margin: ``task.margin`` at the clean inputs ``(N,)`` (the scale of ``"dlr"`` on tasks without DLR).
        aim: target classes ``(N,)`` for targeted DLR (multi-class only), else None.
        clean_range: ``z_π1 − z_π3`` at the clean inputs ``(N,)`` (targeted DLR on 3 classes).

    Shape:
        - output: ``(M, *)``; rows: ``(M,)``; returns ``(M,)``.
    """

    task: Task
    name: str
    y: Tensor
    clean_margin: Tensor | None = None
    aim: Tensor | None = None
    clean_range: Tensor | None = None

    def __post_init__(self) -> None:
        if self.name not in APGD_LOSSES:
            raise ConfigError(f"unknown attack loss {self.name!r}; use one of {', '.join(APGD_LOSSES)}")
        if self.aim is not None and not self._has_dlr():
            raise ConfigError("a targeted attack needs a multi-class task with at least 3 classes")

    def _has_dlr(self) -> bool:
        return is_multiclass(self.task) and getattr(self.task, "num_classes", 0) >= 3

    def __call__(self, output: Tensor, rows: Tensor) -> Tensor:
        """The loss of the rows ``rows`` whose outputs are ``output``."""
        y = self.y[rows]
        if self.aim is not None:
            scale = None if self.clean_range is None else self.clean_range[rows]
            return dlr_targeted(output.float(), y, self.aim[rows], scale)
        if self.name == "ce":
            return self.task.loss(output, y)
        if self.name == "margin":
            return self.task.margin(output, y)
        if self._has_dlr():
            return dlr(output.float(), y)
        scale = torch.ones_like(y, dtype=torch.float32) if self.clean_margin is None else self.clean_margin[rows]
        return self.task.margin(output, y) / (scale.abs() + TINY)
