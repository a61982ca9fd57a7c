"""The one iteration core of every gradient attack: start → forward → objective → input gradient → step → project.

:func:`gradient_ascent` owns the loop; what differs between attacks is injected (the shape of rai-toolbox's
``gradient_ascent``):

- the **objective** ``objective(output, target) -> (N,)``, maximised per sample (cross-entropy, a margin, TRADES'
  KL to a fixed clean distribution, …); ``target`` is any per-sample tensor, indexed along dim 0 with the batch;
- the **step rule** ``step(x, grad, value, t) -> x_next`` including its projection (:class:`ProjectedStep` is PGD's
  rule; APGD's momentum rule plugs in the same way), with ``keep(mask)`` restricting its per-sample state to the
  samples still running;
- an **observer** ``observe(iterate) -> stop | None`` that sees every scored iterate (keeping the worst case,
  tracking first flips, …) and may stop samples early.

Every one of the ``steps + 1`` iterates (the start included) is forwarded once; the final one without a graph, or
not at all with ``score_final=False`` (training-time attacks that only need the point). Gradients are taken with
respect to the input only (``torch.autograd.grad``), the model's mode is the caller's, and there is no host sync
in the loop unless an observer asks to stop samples.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Linear(2, 1, bias=False)
    >>> _ = model.weight.data.copy_(torch.tensor([[1.0, 0.0]]))
    >>> x = torch.full((1, 2), 0.5)
    >>> rule = ProjectedStep.around(x, torch.tensor([0.2]), torch.tensor([0.1]), "linf")
    >>> out = gradient_ascent(model, x, torch.zeros(1), lambda z, t: z[:, 0], rule, steps=3)
    >>> out.x, out.steps
    (tensor([[0.7000, 0.5000]]), 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from medrobust.geometry import Norm, box, direction, project, view

__all__ = ["Ascent", "Iterate", "Objective", "Observer", "ProjectedStep", "StepRule", "gradient_ascent"]

Objective = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Iterate:
    """One scored iterate, as an observer sees it (all tensors detached, restricted to the running samples).

    Attributes:
        t: iterate number, 0 for the start.
        x: the iterate.
        output: the model's output at ``x``.
        value: the objective at ``x``.
        target: the targets of the running samples.
        rows: rows of the full batch that are still running; ``None`` while all are.
        final: this is the last iterate.

    Shape:
        - x: ``(M, *)``; output: ``(M, *)``; value: ``(M,)``; target: ``(M, ...)``; rows: ``(M,)``.
    """

    t: int
    x: Tensor
    output: Tensor
    value: Tensor
    target: Tensor
    rows: Tensor | None
    final: bool


Observer = Callable[[Iterate], "Tensor | None"]


class StepRule(Protocol):
    """Moves the running samples one step and projects them back onto the feasible set."""

    def __call__(self, x: Tensor, grad: Tensor, value: Tensor, t: int) -> Tensor:
        """The next iterate ``(M, *)`` from the current one, its input gradient and objective ``(M,)``."""
        ...

    def keep(self, mask: Tensor) -> StepRule:
        """The rule restricted to the samples where ``mask`` ``(M,)`` is true."""
        ...


@dataclass(frozen=True)
class ProjectedStep:
    """PGD's step: ``Π(x + size·direction(∇))`` with the sign (L∞) or L2-normalised gradient.

    ``Π`` projects onto the ε-ball around ``centre`` ∩ [0, 1] (:func:`~medrobust.geometry.project`).

    Shape:
        - centre: ``(N, *)``; eps, size: ``(N,)``; bounds: two ``(N, *)`` (L∞ only).
    """

    centre: Tensor
    eps: Tensor
    size: Tensor
    norm: Norm
    bounds: tuple[Tensor, Tensor] | None = None

    @classmethod
    def around(cls, x: Tensor, eps: Tensor, size: Tensor, norm: Norm, *, cache_box: bool = True) -> ProjectedStep:
        """The rule for the ball of radius ``eps`` around ``x``; ``cache_box`` precomputes the L∞ element bounds."""
        bounds = box(x, eps) if norm == "linf" and cache_box else None
        return cls(x.detach(), eps, size, norm, bounds)

    def __call__(self, x: Tensor, grad: Tensor, value: Tensor, t: int) -> Tensor:
        """One projected step of length ``size``."""
        return project(
            x + view(self.size, x) * direction(grad, self.norm), self.centre, self.eps, self.norm, self.bounds
        )

    def keep(self, mask: Tensor) -> ProjectedStep:
        """The rule for the rows in ``mask``."""
        bounds = None if self.bounds is None else (self.bounds[0][mask], self.bounds[1][mask])
        return ProjectedStep(self.centre[mask], self.eps[mask], self.size[mask], self.norm, bounds)


@dataclass(frozen=True)
class Ascent:
    """What :func:`gradient_ascent` returns.

    Attributes:
        x: each sample's last point: where an observer stopped it, else the final iterate (detached).
        steps: gradient steps taken (fewer than asked when every sample was stopped early).

    Shape:
        - x: ``(N, *)``.
    """

    x: Tensor
    steps: int


def gradient_ascent(
    model: nn.Module,
    start: Tensor,
    target: Tensor,
    objective: Objective,
    step: StepRule,
    *,
    steps: int,
    observe: Observer | None = None,
    score_final: bool = True,
) -> Ascent:
    """Maximise ``objective(model(x), target)`` per sample by ``steps`` steps of ``step`` from ``start``.

    Args:
        model: called on each iterate, in whatever mode the caller set.
        start: the first iterate.
        target: per-sample second argument of ``objective`` (labels, a clean distribution, …).
        objective: per-sample quantity to maximise, ``(M,)``; the gradient of its sum is each sample's own.
        step: the step rule with its projection (:class:`ProjectedStep` for PGD).
        steps: gradient steps.
        observe: called on every scored iterate; a returned bool ``(M,)`` stops those samples (before the final
            iterate) at that iterate.
        score_final: forward the final iterate (no graph) and show it to the observer; ``False`` skips that
            forward when only the point is needed.

    Shape:
        - start: ``(N, *)``; target: ``(N, ...)``; returns ``Ascent.x`` ``(N, *)``.
    """
    x_adv, rows = start.detach(), None
    last: Tensor | None = None  # full-size points of stopped samples, allocated at the first stop
    t = 0
    for t in range(steps + 1):
        final = t == steps
        if final and not score_final:
            break
        xr = x_adv.detach().requires_grad_(not final)
        with torch.set_grad_enabled(not final):
            output = model(xr)
            value = objective(output, target)
        stop = None
        if observe is not None:
            stop = observe(Iterate(t, xr.detach(), output.detach(), value.detach(), target, rows, final))
        if final:
            break
        (grad,) = torch.autograd.grad(value.sum(), xr)
        if stop is not None and bool(stop.any()):
            last = _set_rows(last, start, rows, stop, xr.detach())
            keep = ~stop
            if not bool(keep.any()):
                return Ascent(last, t)
            rows = keep.nonzero().squeeze(1) if rows is None else rows[keep]
            xr, grad, value, target, step = xr[keep], grad[keep], value[keep], target[keep], step.keep(keep)
        x_adv = step(xr.detach(), grad, value.detach(), t)
    x_adv = x_adv.detach()
    if last is None:
        return Ascent(x_adv, t)
    return Ascent(_set_rows(last, start, rows, None, x_adv), t)


def _set_rows(last: Tensor | None, like: Tensor, rows: Tensor | None, mask: Tensor | None, x: Tensor) -> Tensor:
    """Write the running samples' points ``x`` (those in ``mask``, or all) into the full-size ``last``."""
    out = like.detach().clone() if last is None else last
    picked = x if mask is None else x[mask]
    index = torch.arange(like.shape[0], device=like.device) if rows is None else rows
    out[index if mask is None else index[mask]] = picked
    return out
