"""AMAT's loss-defined margin: the threshold ``τ = μ + z·σ`` of a clean model's per-sample training losses,
``μ, σ`` from Huber's robust estimator, and the predicate "loss ≤ τ" as a task (Ma & Liang, arXiv 2206.01736;
METHODS §1.6).

The estimator is Huber's proposal 2 (joint M-estimation of location and scale; Huber 1981, §6.4), the
algorithm of ``statsmodels.robust.scale.Huber``: start at the median and the normalised MAD, then iterate
``μ ← mean(clip(x, μ − cσ, μ + cσ))`` and ``σ² ← Σ_{|x−μ|≤cσ} (x − μ_new)² / (n·γ − n_out·c²)`` with
``γ = E[min(Z², c²)]`` for standard normal ``Z``, so that σ estimates the standard deviation of Gaussian data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from medrobust.errors import ConfigError, DataError
from medrobust.runtime import eval_mode, model_device
from medrobust.tasks.base import Task

MAD_TO_SIGMA = 1.482602218505602  # 1 / Φ⁻¹(3/4)


def _gamma(c: float) -> float:
    """``E[min(Z², c²)]`` for ``Z ~ N(0, 1)``: the consistency factor of the proposal-2 scale."""
    inside = math.erf(c / math.sqrt(2))  # P(|Z| ≤ c)
    pdf = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    return inside + c * c * (1 - inside) - 2 * c * pdf


def huber_location_scale(
    values: ArrayLike, c: float = 1.5, tol: float = 1e-8, maxiter: int = 100
) -> tuple[float, float]:
    """Huber's proposal-2 estimates ``(μ, σ)`` of a 1-D sample (see the module docstring).

    Args:
        values: finite numbers, at least two of them distinct.
        c: clipping constant in units of σ (1.5, statsmodels' default; ``c → ∞`` gives the mean and the
            population standard deviation).
        tol: relative convergence tolerance.
        maxiter: iteration limit.

    Raises:
        DataError: empty, non-finite or constant input, or no convergence.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2 or not np.isfinite(x).all():
        raise DataError(f"the Huber estimate needs at least 2 finite values; got {x.size} (or NaN/Inf among them)")
    if not c > 0:
        raise ConfigError(f"the Huber constant c must be > 0, got {c}")
    mu = float(np.median(x))
    scale = float(np.median(np.abs(x - mu))) * MAD_TO_SIGMA
    if scale == 0:
        scale = float(x.std())
    if scale == 0:
        raise DataError("all losses are equal; a loss threshold cannot be estimated from a constant sample")
    gamma, n = _gamma(c), x.size
    for _ in range(maxiter):
        new_mu = float(np.clip(x, mu - c * scale, mu + c * scale).mean())
        inside = np.abs(x - mu) <= c * scale
        denom = n * gamma - (n - int(inside.sum())) * c * c
        new_scale = math.sqrt(float(np.sum((x[inside] - new_mu) ** 2)) / denom) if denom > 0 else scale
        done = abs(scale - new_scale) <= new_scale * tol and abs(mu - new_mu) <= new_scale * tol
        mu, scale = new_mu, new_scale
        if done:
            return mu, scale
    raise DataError(f"the Huber estimate did not converge in {maxiter} iterations; check the losses for outliers")


def loss_threshold(losses: ArrayLike, z: float = 1.0, c: float = 1.5) -> float:
    """AMAT's threshold ``τ = μ + z·σ`` (Huber estimates of the clean per-sample training losses).

    Args:
        losses: per-sample losses of a clean (standard-trained) model on its training set.
        z: multiples of the robust scale above the robust mean (AMAT uses 1, 2 or 3).
        c: Huber clipping constant.
    """
    if not math.isfinite(z):
        raise ConfigError(f"z must be a finite number, got {z}")
    mu, scale = huber_location_scale(losses, c=c)
    return mu + z * scale


@torch.no_grad()
def per_sample_losses(model: nn.Module, data: Any, task: Task, batch_size: int = 256) -> Tensor:
    """Per-sample task losses ``(N,)`` of ``model`` (eval mode, restored) over an :class:`ArrayDataset`."""
    device = model_device(model)
    out = []
    with eval_mode(model):
        for start in range(0, len(data), batch_size):
            x, y, _ = data.batch(torch.arange(start, min(start + batch_size, len(data))))
            out.append(task.loss(model(x.to(device)), y.to(device)).float().cpu())
    return torch.cat(out)


@dataclass(frozen=True)
class LossPredicate:
    """A task whose predicate is "per-sample loss ≤ ``tau``" (AMAT's loss-defined margin); the rest is ``base``'s.

    ``margin = loss − tau`` is > 0 exactly when wrong and has the loss's gradient.

    Shape:
        as ``base``.
    """

    base: Task
    tau: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.tau):
            raise ConfigError(f"the loss threshold tau must be finite, got {self.tau}")

    @property
    def kind(self) -> str:
        """The base task's kind."""
        return self.base.kind

    @property
    def dense(self) -> bool:
        """The base task's."""
        return self.base.dense

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """The base task's."""
        return self.base.headline_metrics

    @property
    def calibrated(self) -> bool:
        """The base task's."""
        return self.base.calibrated

    @property
    def has_majority_rate(self) -> bool:
        """The base task's."""
        return self.base.has_majority_rate

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The base task's per-sample loss ``(N,)``."""
        return self.base.loss(output, target)

    def correct(self, output: Tensor, target: Tensor) -> Tensor:
        """Bool ``(N,)``: loss ≤ ``tau``."""
        return self.base.loss(output, target) <= self.tau

    def margin(self, output: Tensor, target: Tensor) -> Tensor:
        """``loss − tau`` ``(N,)``."""
        return self.base.loss(output, target) - self.tau

    def check_target(self, target: Tensor) -> None:
        """The base task's check."""
        self.base.check_target(target)

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """The base task's metrics."""
        return self.base.metrics(outputs, targets)


PREDICATES: tuple[str, ...] = ("task", "loss")


def resolve_predicate(task: Task, predicate: str, tau: float | None = None) -> Task:
    """The task whose ``correct``/``margin`` an adaptive-margin method uses (AMAT's predicate choice).

    Args:
        task: the data's task.
        predicate: ``"task"`` (``task.correct``: argmax for classification, Dice ≥ τ, error ≤ τ) or ``"loss"``
            (per-sample loss ≤ τ).
        tau: ``"task"``: replaces the task's own threshold (segmentation/landmarks only); ``"loss"``: the loss
            threshold (:func:`loss_threshold` of a clean model's training losses gives AMAT's).
    """
    if predicate not in PREDICATES:
        raise ConfigError(f"unknown predicate {predicate!r}; use 'task' or 'loss'")
    if predicate == "task":
        if tau is None:
            return task
        if not hasattr(task, "tau") or not dataclasses.is_dataclass(task):
            raise ConfigError("tau with predicate='task' needs a segmentation or landmark task; use predicate='loss'")
        return cast(Task, dataclasses.replace(task, tau=float(tau)))
    if tau is None:
        raise ConfigError("predicate='loss' needs tau, or clean_run (a standard run whose training losses set tau)")
    return LossPredicate(task, float(tau))
