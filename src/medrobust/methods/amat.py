"""AMAT: Adaptive-Margin Adversarial Training (Ma & Liang, arXiv 2206.01736; METHODS §1.6) — a preset of the
:class:`~medrobust.methods.adaptive_margin.IMA` class, not a second implementation."""

from __future__ import annotations

import inspect
import math
from typing import Any

from medrobust.methods.adaptive_margin import IMA

AMAT_DEFAULTS: dict[str, Any] = {"delta": 0.1, "e_max": math.inf, "stop": "final", "adv_mean": "adversarial"}


def amat(**options: Any) -> IMA:
    """AMAT: :class:`IMA` with AMAT's defaults; ``options`` as for :meth:`IMA.from_options`.

    The predicate is the task's (Dice ≥ τ for segmentation, error ≤ τ for landmarks) or the loss-defined margin
    "loss ≤ τ" (``predicate="loss"``, ``tau`` given, or derived from a clean run where runs are assembled); the
    adversarial point is the final PGD iterate (``stop="final"``, no bisection); the adversarial term is the mean
    over the adversarial samples; ``e_max`` defaults to ∞; ``only_grow=True`` is the landmark setting. Published:
    L2, α = 4 (landmarks 5), 20 steps; landmarks δ = E_max/10. There is no published δ for segmentation; the
    default 0.1 is ours.

    Examples:
        >>> m = amat(tau=0.9)
        >>> m.name, m.search.stop, m.schedule.e_max, m.adv_mean
        ('amat', 'final', inf, 'adversarial')
    """
    return IMA.from_options(**{**AMAT_DEFAULTS, **options, "name": "amat"})


def _amat_signature() -> inspect.Signature:
    """:meth:`IMA.from_options`'s signature with AMAT's defaults (option checks and ``list methods`` read it)."""
    sig = inspect.signature(IMA.from_options)
    params = [
        p.replace(default=AMAT_DEFAULTS.get(name, p.default)) for name, p in sig.parameters.items() if name != "name"
    ]
    return sig.replace(parameters=params)


amat.__signature__ = _amat_signature()  # type: ignore[attr-defined]
