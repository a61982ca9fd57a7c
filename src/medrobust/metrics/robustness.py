"""Summaries of an accuracy-vs-ε curve: AUC-robustness (IMA) and mean adversarial accuracy.

Both reward a constant classifier (a binary model stuck at 50 % scores 0.5 at every ε), so always report the
clean accuracy beside them and flag models at or below the majority-class rate (see
:mod:`medrobust.evaluation.checks`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _curve(levels: Sequence[float], accuracies: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    eps = np.asarray(levels, dtype=np.float64)
    acc = np.asarray(accuracies, dtype=np.float64)
    if eps.shape != acc.shape or eps.ndim != 1 or eps.size == 0:
        raise ValueError(f"need matching non-empty level and accuracy lists, got {eps.shape} and {acc.shape}")
    if np.any(eps < 0) or np.any(np.diff(eps) <= 0):
        raise ValueError(f"levels must be non-negative and strictly increasing, got {eps.tolist()}")
    return eps, acc


def auc_robustness(clean_accuracy: float, levels: Sequence[float], accuracies: Sequence[float]) -> float:
    """Normalised area under accuracy-vs-ε (Ma & Liang, IMA, CMPB 2023).

    The trapezoid rule over ``[0] + levels`` with the clean accuracy at 0 (a level 0 in ``levels`` replaces it),
    divided by the largest ε, so the result lies in [0, 1].

    Args:
        clean_accuracy: accuracy without attack.
        levels: increasing ε values (> 0 except possibly the first).
        accuracies: robust accuracy at each ε.
    """
    eps, acc = _curve(levels, accuracies)
    if eps[0] > 0:
        eps, acc = np.r_[0.0, eps], np.r_[clean_accuracy, acc]
    if eps[-1] <= 0:
        raise ValueError("AUC-robustness needs at least one ε > 0")
    area = float(np.sum((eps[1:] - eps[:-1]) * (acc[1:] + acc[:-1]) / 2.0))
    return area / float(eps[-1])


def mean_adversarial_accuracy(levels: Sequence[float], accuracies: Sequence[float]) -> float:
    """Arithmetic mean of the accuracies over the ε list (Martinez-Martinez & Brown 2022, COVID X-ray study).

    A level of 0 in the list (the clean point) is excluded from the mean.
    """
    eps, acc = _curve(levels, accuracies)
    acc = acc[eps > 0]
    if acc.size == 0:
        raise ValueError("mean adversarial accuracy needs at least one ε > 0")
    return float(acc.mean())
