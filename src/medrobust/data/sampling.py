"""Seeded stratified sampling of sample indices (subsets for quick runs, held-out validation parts).

Proportional allocation with the largest-remainder rule keeps every class's share of the subset within one
sample of its share of the whole split (Cochran, *Sampling Techniques*, 1977, §5.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.errors import ConfigError


def strata(labels: NDArray[Any]) -> NDArray[np.int64]:
    """One stratum per sample: the class for ``(N,)`` labels; the first positive label (or ``L`` if none) for
    ``(N, L)`` multi-label 0/1 rows.

    Shape:
        labels ``(N,)`` or ``(N, L)`` → ``(N,)``.
    """
    if labels.ndim == 1:
        return labels.astype(np.int64)
    positive = labels.reshape(len(labels), -1) > 0
    return np.where(positive.any(axis=1), positive.argmax(axis=1), positive.shape[1]).astype(np.int64)


def stratified_subset(labels: NDArray[Any], n: int, seed: int) -> NDArray[np.int64]:
    """Indices of ``n`` samples drawn without replacement, stratified by :func:`strata`, in ascending order.

    Args:
        labels: ``(N,)`` class indices or ``(N, L)`` multi-label 0/1.
        n: subset size, ``1 <= n <= N``.
        seed: same seed and labels → same indices.

    Shape:
        labels ``(N,)`` or ``(N, L)`` → ``(n,)`` int64.
    """
    total = len(labels)
    if not 1 <= n <= total:
        raise ConfigError(f"subset size n={n} must lie in 1..{total} (the split's size)")
    keys = strata(labels)
    classes, counts = np.unique(keys, return_counts=True)
    exact = counts * (n / total)
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: n - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(keys == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))
