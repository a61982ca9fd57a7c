"""Bisection onto the decision boundary along the segment from a clean input to a misclassified point.

The refinement step of IMA (Ma & Liang, CMPB 2023, arXiv 2005.09147) and of minimal-margin estimation:
``steps`` halvings of the segment ``[x, x_far]`` against ``task.correct``, without gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medrobust.attacks._geometry import Norm, check_images, check_norm, view
from medrobust.attacks._geometry import norm as norm_of
from medrobust.attacks.base import model_mode
from medrobust.errors import ConfigError, DataError
from medrobust.tasks.base import Task


@dataclass(frozen=True)
class Boundary:
    """Result of :func:`bisect_boundary`.

    Attributes:
        last_correct: the last point of the segment known to be classified correctly.
        first_wrong: the first point known to be misclassified (equal to ``last_correct`` when not crossed).
        distance: ``‖last_correct − x‖`` in ``norm``: a point this far is still correct.
        upper: ``‖first_wrong − x‖``: a misclassified point this close exists; ``inf`` when ``x_far`` is correct.
        crossed: bool, the segment crosses the boundary (``x`` correct, ``x_far`` wrong) and was bisected.
        norm: the norm of ``distance`` and ``upper``.

    Shape:
        - last_correct, first_wrong: ``(N, *)``; distance, upper, crossed: ``(N,)``.
    """

    last_correct: Tensor
    first_wrong: Tensor
    distance: Tensor
    upper: Tensor
    crossed: Tensor
    norm: str

    def midpoint(self) -> Tensor:
        """The middle of the final bracket (IMA ``stop=1``); ``(N, *)``."""
        return (self.last_correct + self.first_wrong) / 2


def bisect_boundary(
    model: nn.Module,
    x: Tensor,
    x_far: Tensor,
    y: Tensor,
    *,
    task: Task,
    steps: int = 10,
    norm: Norm = "l2",
    crossed: Tensor | None = None,
    train_mode: bool = False,
) -> Boundary:
    """Bisect each segment ``[x, x_far]`` onto the boundary of ``task.correct``.

    The bracket ``[t_lo, t_hi]`` on ``x + t·(x_far − x)`` starts at ``[0, 1]`` and halves ``steps`` times, so the
    boundary is located to ``‖x_far − x‖/2^steps``. Only crossing samples are evaluated (METHODS: bisect the
    flipped samples alone). Samples whose ``x`` is misclassified get ``t_lo = t_hi = 0`` (distance 0); samples
    whose ``x_far`` is still correct get ``t_lo = t_hi = 1`` (``last_correct = x_far``, ``upper = inf``).

    Args:
        model: the classifier, run under ``torch.no_grad``.
        x: clean inputs; x_far: points on the wrong side (e.g. PGD outputs); y: targets.
        task: defines "correct".
        steps: halvings of the bracket.
        norm: norm of the reported distances.
        crossed: optional bool ``(N,)`` naming the samples known to have ``x`` correct and ``x_far`` wrong
            (skips the two endpoint forward passes); the others are treated as correct along the whole segment.
        train_mode: run the model in train mode (IMA's quirk); default eval mode.

    Shape:
        - x, x_far: ``(N, *)`` in [0, 1]; y: ``(N, ...)``; crossed: ``(N,)``.
    """
    check_norm(norm)
    if steps < 0:
        raise ConfigError(f"bisection steps must be >= 0; got {steps}")
    if x.shape != x_far.shape:
        raise DataError(f"x has shape {tuple(x.shape)} but x_far has {tuple(x_far.shape)}; pass matching batches")
    check_images(x)
    check_images(x_far)
    n = x.shape[0]
    if crossed is not None and crossed.shape != (n,):
        raise DataError(f"crossed must have shape ({n},); got {tuple(crossed.shape)}")
    t_lo, t_hi = x.new_ones(n), x.new_ones(n)
    x, x_far = x.detach(), x_far.detach()
    with model_mode(model, train_mode), torch.no_grad():
        if crossed is None:
            near_ok = task.correct(model(x), y)
            crossed = near_ok & ~task.correct(model(x_far), y)
            t_lo, t_hi = torch.where(near_ok, t_lo, 0.0), torch.where(near_ok, t_hi, 0.0)
        crossed = crossed.to(device=x.device, dtype=torch.bool)
        ids = crossed.nonzero().squeeze(1)
        if ids.numel():
            t_lo[ids], t_hi[ids] = _bisect(model, x[ids], x_far[ids], y[ids], task, steps)
    last_correct, first_wrong = torch.lerp(x, x_far, view(t_lo, x)), torch.lerp(x, x_far, view(t_hi, x))
    upper = torch.where(crossed | (t_hi < 1), norm_of(first_wrong - x, norm), torch.inf)
    return Boundary(last_correct, first_wrong, norm_of(last_correct - x, norm), upper, crossed, norm)


def _bisect(model: nn.Module, x: Tensor, x_far: Tensor, y: Tensor, task: Task, steps: int) -> tuple[Tensor, Tensor]:
    lo, hi = x.new_zeros(x.shape[0]), x.new_ones(x.shape[0])
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = task.correct(model(torch.lerp(x, x_far, view(mid, x))), y)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return lo, hi
