"""The attack inside adaptive-margin training: PGD with per-iterate tracking, then the adversarial point.

IMA (Ma & Liang, CMPB 2023, arXiv 2005.09147) runs PGD with a per-sample radius (the sample's margin) and
records, per sample, the last iterate still classified correctly, the first misclassified one and how many
iterates were misclassified; flipped samples are then bisected onto the decision boundary. Everything is
written against ``task.correct``, so AMAT (arXiv 2206.01736) reuses it with a loss- or metric-defined predicate.
The geometry (directions, projection, random starts) comes from :mod:`medrobust.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from medrobust.attacks.ascent import Iterate, ProjectedStep, gradient_ascent
from medrobust.attacks.boundary import REFINES, Refine, bisect_boundary
from medrobust.geometry import Draws, Norm, random_start, uniform_noise, view
from medrobust.tasks.base import Task
from medrobust.tasks.classification import ClassificationTask

AttackLoss = Literal["ce", "margin"]
Start = Literal["sphere", "ball"]
Stop = Literal["last_correct", "midpoint", "final"]
Bracket = Literal["clean", "iterates"]
FarEnd = Literal["final", "first_wrong"]
SearchBatch = Literal["full", "subset"]
ATTACK_LOSSES: tuple[str, ...] = ("ce", "margin")
STARTS: tuple[str, ...] = ("sphere", "ball")
STOPS: tuple[str, ...] = ("last_correct", "midpoint", "final")
BRACKETS: tuple[str, ...] = ("clean", "iterates")
FAR_ENDS: tuple[str, ...] = ("final", "first_wrong")
SEARCH_BATCHES: tuple[str, ...] = ("full", "subset")
__all__ = ["REFINES", "Refine", "Tracked", "adversarial_point", "attack_objective", "soft_margin", "tracked_pgd"]


@dataclass(frozen=True)
class Tracked:
    """What :func:`tracked_pgd` returns.

    Attributes:
        final: the last PGD iterate.
        last_correct: the last iterate before the first misclassified one (``x`` if the start was wrong;
            the final iterate if no iterate was wrong).
        first_wrong: the first misclassified iterate (``x`` where none was).
        flips: number of misclassified iterates (the official ``advc``); ``> 0`` means the sample flipped.
        final_correct: the final iterate is classified correctly.
        margins: ``task.margin`` at ``last_correct``, ``first_wrong`` and ``final`` (used by Illinois refinement);
            None when not tracked.

    Shape:
        - final, last_correct, first_wrong: ``(N, *)``; flips, final_correct: ``(N,)``; margins: three ``(N,)``.
    """

    final: Tensor
    last_correct: Tensor
    first_wrong: Tensor
    flips: Tensor
    final_correct: Tensor
    margins: tuple[Tensor, Tensor, Tensor] | None = None


def soft_margin(task: Task, output: Tensor, y: Tensor) -> Tensor:
    """Soft logit margin ``logsumexp_{j≠y} z_j − z_y`` per sample ``(N,)`` (> 0 roughly means wrong).

    One-logit binary: ``−(2y−1)·z``; multi-label: ``logsumexp_l(−s_l·z_l)`` with ``s = 2y − 1``; tasks that are
    not classification fall back to ``task.margin``.
    """
    if not isinstance(task, ClassificationTask):
        return task.margin(output, y)
    z = output.float()
    if task.single_logit:
        z = z.reshape(z.shape[0])
        return -(2 * y.float().reshape(z.shape) - 1) * z
    if task.kind == "multilabel":
        return torch.logsumexp(-(2 * y.float() - 1) * z, dim=1)
    target = y.long().reshape(-1, 1)
    others = z.scatter(1, target, float("-inf"))
    return torch.logsumexp(others, dim=1) - z.gather(1, target).squeeze(1)


def attack_objective(task: Task, output: Tensor, y: Tensor, loss: AttackLoss) -> Tensor:
    """Per-sample quantity PGD maximises: ``task.loss`` (``"ce"``) or :func:`soft_margin` (``"margin"``)."""
    return task.loss(output, y) if loss == "ce" else soft_margin(task, output, y)


def start_point(x: Tensor, eps: Tensor, p: Norm, start: Start, generator: Draws) -> Tensor:
    """PGD's random start, clamped to [0, 1].

    ``"sphere"`` (IMA's official code, quirk Q1): ``U[−1, 1)^d`` noise rescaled to L2 norm ``ε`` (on the sphere)
    or scaled by ``ε`` (L∞, uniform in the cube). ``"ball"``: uniform in the ball (:func:`random_start`).
    """
    if start == "ball":
        return random_start(x, eps, p, generator)
    return (x + uniform_noise(x, eps, p, symmetric=True, generator=generator)).clamp_(0, 1)


def tracked_pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    task: Task,
    eps: Tensor,
    norm: Norm,
    steps: int,
    step_size: Tensor,
    loss: AttackLoss = "ce",
    start: Start = "sphere",
    generator: Draws = None,
    track_margins: bool = True,
    start_eps: Tensor | None = None,
) -> Tracked:
    """PGD with per-sample radius ``eps`` that tracks the iterates around each sample's first flip.

    ``steps`` gradient steps of ``step_size·direction(∇)`` (L2-normalised or sign), each followed by projection
    onto the ball ∩ [0, 1]; the ``steps + 1`` iterates (start included) are all classified. Runs in the model's
    current mode; gradients are taken with respect to the input only, and no ``.item()`` sync happens in the loop.
    ``track_margins=False`` skips ``task.margin`` at every iterate (only Illinois refinement uses it; for dense
    tasks it costs a Dice evaluation per iterate) and returns ``margins=None``. ``start_eps`` is the random start's
    radius (default ``eps``; AMAT starts at ``min(max(E − δ, δ), E)``).

    Shape:
        - x: ``(N, *)`` in [0, 1]; y: targets of ``task``; eps, step_size, start_eps: ``(N,)``.
    """
    x = x.detach()
    tracker = FlipTracker(task, x, track_margins)
    run = gradient_ascent(
        model,
        start_point(x, eps if start_eps is None else start_eps, norm, start, generator),
        y,
        lambda out, target: attack_objective(task, out, target, loss),
        ProjectedStep.around(x, eps, step_size, norm),
        steps=steps,
        observe=tracker,
    )
    return tracker.tracked(run.x)


class FlipTracker:
    """Observer of :func:`tracked_pgd`: per sample, the iterates around the first flip and the flip count.

    Shape:
        - x: ``(N, *)``, the clean batch (the iterates start from it for the bookkeeping).
    """

    def __init__(self, task: Task, x: Tensor, track_margins: bool) -> None:
        self.task, self.track_margins = task, track_margins
        self.last_correct, self.first_wrong = x.clone(), x.clone()
        self.flips = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        self.ok = torch.ones_like(self.flips, dtype=torch.bool)
        self.g_last = self.g_first = self.g = torch.zeros(x.shape[0], device=x.device)

    def __call__(self, it: Iterate) -> None:
        """Record iterate ``it`` (all samples run every iterate: no early stop)."""
        self.ok = ok = self.task.correct(it.output, it.target)
        if self.track_margins:
            self.g = self.task.margin(it.output, it.target).float()
        before = self.flips == 0
        self.last_correct = torch.where(view(before & ok, it.x), it.x, self.last_correct)
        self.first_wrong = torch.where(view(before & ~ok, it.x), it.x, self.first_wrong)
        self.g_last = torch.where(before & ok, self.g, self.g_last)
        self.g_first = torch.where(before & ~ok, self.g, self.g_first)
        self.flips += (~ok).long()

    def tracked(self, final: Tensor) -> Tracked:
        """The record, with ``final`` the last iterate."""
        margins = (self.g_last, self.g_first, self.g) if self.track_margins else None
        return Tracked(final, self.last_correct, self.first_wrong, self.flips, self.ok, margins)


def adversarial_point(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    tracked: Tracked,
    select: Tensor,
    *,
    task: Task,
    stop: Stop = "last_correct",
    bracket: Bracket = "clean",
    steps: int = 10,
    train_mode: bool = True,
    refine: Refine = "bisection",
    clean_margin: Tensor | None = None,
    far_end: FarEnd = "final",
    batch: SearchBatch = "full",
) -> Tensor:
    """The point each sample trains on: a boundary point for the ``select``-ed samples, the final iterate otherwise.

    ``stop="final"`` (AMAT) keeps the final PGD iterate. Otherwise the selected samples (flipped ones) are bisected
    ``steps`` times (no gradient) along a segment from the correct side to the wrong side. ``bracket="clean"``
    (IMA's settings) runs from ``x`` to the far end ``far_end``: the final iterate (``"final"``, official: the
    far end ``Xn2`` is set to the final iterate, ``Xn2_equal_Xn=1``, RobustDNN_IMA_bn.py L107-108 and
    MedMNIST_CNN_IMA.py L219, even when the final iterate is classified correctly again after a flip) or, where
    the final iterate is back on the correct side, the first misclassified iterate (``"first_wrong"``).
    ``bracket="iterates"`` uses the last-correct and first-wrong iterates. ``stop`` returns the last point known
    correct (``"last_correct"``, IMA ``stop=3``) or the bracket's midpoint (``"midpoint"``, ``stop=1``).
    ``refine="illinois"`` replaces the halvings by Illinois steps (see
    :func:`~medrobust.attacks.boundary.bisect_boundary`), using the margins tracked by :func:`tracked_pgd` and
    ``clean_margin`` (``task.margin`` at ``x``) as the segment ends' values when they are available.

    ``batch="full"`` (official, RobustDNN_IMA_bn.py L109-120 and L249-260) searches as soon as any sample flipped,
    probes the whole batch at every step (its batch-norm statistics in train mode are the whole batch's) and
    returns every sample's search result; ``"subset"`` probes only the ``select``-ed samples and returns the
    final iterate for the others (faster; with train-mode batch norm the statistics are the subset's).

    Shape:
        - x: ``(N, *)``; select: bool ``(N,)``; clean_margin: ``(N,)``; output: ``(N, *)``.
    """
    full = batch == "full"
    trigger = tracked.flips > 0 if full else select
    if stop == "final" or not bool(trigger.any()):
        return tracked.final
    g = tracked.margins
    ends: tuple[Tensor, Tensor] | None = None
    if bracket == "clean":
        near = x.detach()
        back = tracked.final_correct if far_end == "first_wrong" else torch.zeros_like(tracked.final_correct)
        far = torch.where(view(back, x), tracked.first_wrong, tracked.final)
        if g is not None and clean_margin is not None:
            ends = (clean_margin, torch.where(back, g[1], g[2]))
    else:
        near, far = tracked.last_correct, tracked.first_wrong
        ends = None if g is None else (g[0], g[1])
    found = bisect_boundary(
        model,
        near,
        far,
        y,
        task=task,
        steps=steps,
        crossed=select,
        train_mode=train_mode,
        refine=refine,
        margins=ends,
        whole_batch=full,
    )
    point = found.last_correct if stop == "last_correct" else found.midpoint()
    return point if full else torch.where(view(select, x), point, tracked.final)
