"""AMAT: Adaptive-Margin Adversarial Training (Ma & Liang, arXiv 2206.01736; METHODS §1.6) — the
:class:`~medrobust.methods.adaptive_margin.IMA` algorithm in AMAT's configuration, not a second implementation."""

from __future__ import annotations

import math

from medrobust.geometry import Norm
from medrobust.methods.adaptive_margin import IMA
from medrobust.methods.margin_attack import AttackLoss, Start


class AMAT(IMA):
    """AMAT: Adaptive-Margin Adversarial Training (Ma & Liang, arXiv 2206.01736; METHODS §1.6).

    The :class:`IMA` algorithm in AMAT's configuration, not a second implementation: the predicate is the
    task's (Dice ≥ τ for segmentation, error ≤ τ for landmarks) or the loss-defined margin "loss ≤ τ" with ``τ``
    given or derived from a clean run (``predicate="loss"``); the adversarial point is the final PGD iterate
    (``stop="final"``, no bisection); the adversarial term is the mean over the adversarial samples; ``e_max``
    defaults to ∞; ``only_grow=True`` is the landmark setting. Published: L2, α = 4 (landmarks 5), 20 steps;
    landmarks δ = E_max/10. There is no published δ for segmentation; the default 0.1 is ours.

    Args:
        norm, delta, e_max, alpha, steps, beta, attack_loss, random_start, train_mode_attack,
            margin_stable_epochs, report_eps: as for :class:`IMA`.
        predicate, tau, clean_run, z, only_grow: see :class:`IMA`.

    Shape:
        - batch.x: ``(B, C, *spatial)`` in [0, 1]; batch.index: ``(B,)`` indices into the training set.
    """

    name = "amat"

    def __init__(
        self,
        norm: Norm = "l2",
        delta: float = 0.1,
        e_max: float = math.inf,
        alpha: float = 4.0,
        steps: int = 20,
        beta: float = 0.5,
        attack_loss: AttackLoss = "ce",
        predicate: str = "task",
        tau: float | None = None,
        clean_run: str | None = None,
        z: float = 1.0,
        only_grow: bool = False,
        random_start: Start = "sphere",
        train_mode_attack: bool = True,
        margin_stable_epochs: int = 0,
        report_eps: list[float] | None = None,
    ) -> None:
        super().__init__(
            norm=norm, delta=delta, e_max=e_max, alpha=alpha, steps=steps, beta=beta, attack_loss=attack_loss,
            stop="final", random_start=random_start, train_mode_attack=train_mode_attack,
            margin_stable_epochs=margin_stable_epochs, report_eps=report_eps, predicate=predicate, tau=tau,
            clean_run=clean_run, z=z, adv_mean="adversarial", only_grow=only_grow,
        )  # fmt: skip
