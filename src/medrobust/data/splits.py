"""Seeded train/val/test splits for datasets without an official one.

:func:`stratified_split` keeps each class's share in every split (per class: shuffle, then the first
``round(n_c·test)`` go to test and the next ``round(n_c·val)`` to val). :func:`grouped_split` does the same over
*groups* (patients), so that no group has samples in two splits; a group's stratum is its most frequent label.
The split is computed from the file list and labels alone, before any image is decoded, so a corrupt file never
moves other samples between splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data.sampling import strata
from medrobust.errors import ConfigError, DataError

SPLIT_NAMES = ("train", "val", "test")


def check_fractions(val: float, test: float) -> None:
    """``val`` and ``test`` fractions must be in [0, 1) with ``val + test < 1``."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"val_fraction={val} and test_fraction={test} must be ≥ 0 and sum to less than 1")


def split_rule(val: float, test: float, seed: int, *, by: str = "image") -> str:
    """The sentence stored in ``DatasetInfo.extra['split_rule']``."""
    train = 1 - val - test
    return (
        f"seeded stratified split by {by} (seed {seed}): train {train:.0%} / val {val:.0%} / test {test:.0%} "
        "of each class"
    )


def stratified_split(labels: NDArray[Any], *, val: float, test: float, seed: int) -> dict[str, NDArray[np.int64]]:
    """Split sample indices into train/val/test, stratified by class.

    Args:
        labels: ``(N,)`` class indices, or ``(N, L)`` multi-label 0/1 (stratified by the first positive label).
        val: fraction of each class for validation.
        test: fraction of each class for testing.
        seed: same seed and labels → same split.

    Shape:
        labels ``(N,)`` or ``(N, L)`` → three ascending ``(n_split,)`` int64 index arrays that partition ``0..N-1``.
    """
    check_fractions(val, test)
    keys = strata(np.asarray(labels))
    rng = np.random.default_rng(seed)
    parts: dict[str, list[NDArray[np.int64]]] = {s: [] for s in SPLIT_NAMES}
    for c in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == c))
        n_test, n_val = round(len(members) * test), round(len(members) * val)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}


def grouped_split(
    groups: Sequence[str], labels: NDArray[Any], *, val: float, test: float, seed: int
) -> dict[str, NDArray[np.int64]]:
    """Split sample indices so that every group (patient) lies in exactly one split.

    Groups are stratified by their most frequent label; within a stratum the shuffled groups fill test until it
    holds ``round(test·n)`` samples of that stratum, then val, and the rest go to train.

    Args:
        groups: one group id per sample.
        labels: ``(N,)`` class indices.
        val: target fraction of samples for validation.
        test: target fraction of samples for testing.
        seed: same seed, groups and labels → same split.

    Shape:
        labels ``(N,)`` → three ascending int64 index arrays partitioning ``0..N-1``.
    """
    check_fractions(val, test)
    names, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    sizes = np.bincount(inverse, minlength=len(names))
    group_label = np.array([np.bincount(labels[inverse == g]).argmax() for g in range(len(names))])
    rng = np.random.default_rng(seed)
    where = np.empty(len(names), dtype=np.int64)  # 0 train, 1 val, 2 test
    for c in np.unique(group_label):
        members = rng.permutation(np.flatnonzero(group_label == c))
        total = sizes[members].sum()
        filled = np.cumsum(sizes[members]) - sizes[members]  # samples placed before each group
        where[members] = np.where(filled < round(test * total), 2, np.where(filled < round((test + val) * total), 1, 0))
    sample_split = where[inverse]
    return {s: np.flatnonzero(sample_split == k).astype(np.int64) for k, s in ((0, "train"), (1, "val"), (2, "test"))}


def take_split(parts: dict[str, NDArray[np.int64]], split: str, where: str) -> NDArray[np.int64]:
    """The indices of ``split``; a one-line :class:`DataError` naming ``where`` if that split is empty."""
    indices = parts[split]
    if len(indices) == 0:
        sizes = ", ".join(f"{s} {len(parts[s])}" for s in SPLIT_NAMES)
        raise DataError(f"{where}: the {split} split is empty ({sizes}); add data or change val_fraction/test_fraction")
    return indices
