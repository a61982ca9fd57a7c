"""Search for the decision boundary along the segment from a clean input to a misclassified point.

The refinement step of IMA (Ma & Liang, CMPB 2023, arXiv 2005.09147) and of minimal-margin estimation:
``steps`` halvings of the segment ``[x, x_far]`` against ``task.correct``, without gradients (``"bisection"``,
the published rule), or ``steps`` Illinois (modified regula falsi) steps that place each probe where the
linear interpolation of ``task.margin`` crosses zero (``"illinois"``: exact in one step when the margin is linear
along the segment, superlinear otherwise, so 3–4 steps replace 10 halvings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from medrobust.errors import ConfigError, DataError
from medrobust.geometry import Norm, check_images, check_norm, view
from medrobust.geometry import norm as norm_of
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task

Refine = Literal["bisection", "illinois"]
REFINES: tuple[str, ...] = ("bisection", "illinois")


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
    refine: Refine = "bisection",
    margins: tuple[Tensor, Tensor] | None = None,
    whole_batch: bool = False,
) -> Boundary:
    """Search each segment ``[x, x_far]`` for the boundary of ``task.correct``.

    The bracket ``[t_lo, t_hi]`` on ``x + t·(x_far − x)`` starts at ``[0, 1]``; ``"bisection"`` halves it ``steps``
    times, so the boundary is located to ``‖x_far − x‖/2^steps``. ``"illinois"`` probes where the straight line
    through the bracket ends' ``task.margin`` values crosses zero (halving the value of an end kept twice), and
    falls back to the midpoint where the margins do not change sign; the bracket stays valid whatever the margin
    does, because each probe is classified with ``task.correct``. By default only crossing samples are evaluated
    (METHODS: bisect the flipped samples alone): samples whose ``x`` is misclassified get ``t_lo = t_hi = 0``
    (distance 0), samples whose ``x_far`` is still correct get ``t_lo = t_hi = 1`` (``last_correct = x_far``,
    ``upper = inf``). With ``whole_batch`` every sample is probed and keeps its own bracket.

    Args:
        model: the classifier, run under ``torch.no_grad``.
        x: clean inputs; x_far: points on the wrong side (e.g. PGD outputs); y: targets.
        task: defines "correct".
        steps: halvings of the bracket.
        norm: norm of the reported distances.
        crossed: optional bool ``(N,)`` naming the samples known to have ``x`` correct and ``x_far`` wrong
            (skips the two endpoint forward passes); the others are treated as correct along the whole segment.
        train_mode: run the model in train mode (IMA's quirk); default eval mode.
        refine: ``"bisection"`` (published) or ``"illinois"``.
        margins: optional ``task.margin`` at ``x`` and at ``x_far`` (``"illinois"`` only; saves one forward pass
            of the crossing samples when the caller already has them, e.g. from the attack's iterates).
        whole_batch: probe every sample of the batch, crossing or not, and return each one's own bracket (IMA's
            official ``refine_onto_boundary``, SarielMa/Increasing-Margin-Adversarial-Training c3f6df0
            ``classification/core/RobustDNN_IMA_bn.py`` L249-260, which forwards the whole batch at every halving).
            With ``train_mode`` and batch norm a sample's output depends on its batch, so this is what makes the
            boundary the official one; without batch statistics it only costs time.

    Shape:
        - x, x_far: ``(N, *)`` in [0, 1]; y: ``(N, ...)``; crossed: ``(N,)``; margins: two ``(N,)``.
    """
    check_norm(norm)
    if refine not in REFINES:
        raise ConfigError(f"unknown boundary refinement {refine!r}; use 'bisection' or 'illinois'")
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
        ids = torch.arange(n, device=x.device) if whole_batch else crossed.nonzero().squeeze(1)
        if ids.numel():
            xs, fs, ys = x[ids], x_far[ids], y[ids]
            if refine == "bisection":
                t_lo[ids], t_hi[ids] = _bisect(model, xs, fs, ys, task, steps)
            else:
                ends = _end_margins(model, xs, fs, ys, task) if margins is None else (margins[0][ids], margins[1][ids])
                t_lo[ids], t_hi[ids] = _illinois(model, xs, fs, ys, task, steps, *ends)
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


def _end_margins(model: nn.Module, x: Tensor, x_far: Tensor, y: Tensor, task: Task) -> tuple[Tensor, Tensor]:
    out = model(torch.cat([x, x_far]))
    both = task.margin(out, torch.cat([y, y])).float()
    return both[: len(x)], both[len(x) :]


def _illinois(
    model: nn.Module, x: Tensor, x_far: Tensor, y: Tensor, task: Task, steps: int, g_lo: Tensor, g_hi: Tensor
) -> tuple[Tensor, Tensor]:
    """Illinois steps on ``t ↦ task.margin(x + t·(x_far − x))``; ``g_lo ≤ 0`` at ``t = 0``, ``g_hi > 0`` at 1."""
    lo, hi = x.new_zeros(x.shape[0]), x.new_ones(x.shape[0])
    g_lo, g_hi = g_lo.to(lo.dtype).clone(), g_hi.to(lo.dtype).clone()
    kept = torch.zeros_like(lo)  # +1: the last probe was correct (high end kept), −1: it was wrong (low end kept)
    for _ in range(steps):
        width = hi - lo
        usable = (g_lo < 0) & (g_hi > 0)
        secant = lo + width * g_lo / (g_lo - g_hi).where(usable, torch.ones_like(g_lo))
        secant = torch.minimum(torch.maximum(secant, lo + 1e-3 * width), hi - 1e-3 * width)
        t = torch.where(usable, secant, (lo + hi) / 2)
        out = model(torch.lerp(x, x_far, view(t, x)))
        ok, g = task.correct(out, y), task.margin(out, y).float()
        g = torch.where(ok, g.clamp(max=0.0), g.clamp(min=torch.finfo(g.dtype).tiny))
        g_hi = torch.where(ok & (kept > 0), g_hi / 2, torch.where(ok, g_hi, g))
        g_lo = torch.where(~ok & (kept < 0), g_lo / 2, torch.where(ok, g, g_lo))
        lo, hi = torch.where(ok, t, lo), torch.where(ok, hi, t)
        kept = torch.where(ok, torch.ones_like(kept), -torch.ones_like(kept))
    return lo, hi
