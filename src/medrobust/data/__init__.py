"""Datasets: the embedded CT phantom, Fashion-MNIST (IDX) and MedMNIST (npz).

Use :func:`load` (``medrobust.data.load("phantom-ct", split="test")``); every dataset yields
``(x, target, index)`` with ``x`` float in [0, 1], shape ``(C, H, W)``.
"""

from medrobust.data import idx, medmnist, phantom  # noqa: F401  (register loaders)
from medrobust.data.base import ArrayDataset, DatasetInfo, task_for
from medrobust.data.registry import DATASETS, load

__all__ = ["DATASETS", "ArrayDataset", "DatasetInfo", "load", "task_for"]
