"""The dataset registry and :func:`load`."""

from __future__ import annotations

from typing import Any, Protocol

from medrobust.data.base import SPLITS, ArrayDataset
from medrobust.errors import ConfigError
from medrobust.registry import Registry


class DatasetFactory(Protocol):
    """A loader: ``factory(split=..., root=..., **options) -> ArrayDataset``."""

    def __call__(self, *, split: str, root: str | None = None, **options: Any) -> ArrayDataset: ...


DATASETS: Registry[ArrayDataset] = Registry("dataset")


def load(name: str, split: str = "train", *, root: str | None = None, **options: Any) -> ArrayDataset:
    """Load split ``split`` of the registered dataset ``name``.

    Args:
        name: a name from ``medrobust list datasets`` (e.g. ``"phantom-ct"``, ``"fashion-mnist"``, ``"medmnist"``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder holding the dataset files (loaders that read files).
        **options: loader options (e.g. ``size=64`` for the phantom, ``flag="pathmnist"`` for MedMNIST).

    Returns:
        The split as an :class:`ArrayDataset` yielding ``(x, target, index)``.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return DATASETS.create(name, split=split, root=root, **options)
