"""Landmark metrics: radial errors, mean radial error (MRE) and success detection rate (SDR) at radii.

Coordinates are ``(row, col)`` in pixels; ``spacing`` (e.g. mm per pixel) converts errors to physical units, and
SDR radii are in the same unit as the errors. Conventions of the cephalometric challenges (Wang et al. 2016):
MRE is the mean over every (sample, landmark) pair; SDR@r is the fraction of pairs with error ≤ r.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def radial_errors(pred: Tensor, target: Tensor, spacing: float = 1.0) -> Tensor:
    """Euclidean error per sample and landmark ``(N, K)``.

    Shape:
        - pred, target: ``(N, K, 2)``.
    """
    return torch.linalg.vector_norm((pred - target).double(), dim=-1) * spacing


def mean_radial_error(errors: Tensor) -> float:
    """MRE: mean of the ``(N, K)`` errors."""
    return float(errors.double().mean())


def success_detection_rate(errors: Tensor, radius: float) -> float:
    """SDR@radius: fraction of the ``(N, K)`` errors that are ≤ ``radius``."""
    return float((errors <= radius).double().mean())


def landmark_metrics(errors: Tensor, radii: Sequence[float]) -> dict[str, float]:
    """``mre``, ``mre_std`` (over pairs) and ``sdr@r`` for each radius of ``radii``."""
    e = errors.double()
    out = {"mre": mean_radial_error(e), "mre_std": float(e.std(unbiased=False)) if e.numel() else 0.0}
    out.update({f"sdr@{r:g}": success_detection_rate(e, r) for r in radii})
    return out
