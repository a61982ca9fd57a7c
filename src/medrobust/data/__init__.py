"""Datasets: the embedded CT phantom, Fashion-MNIST (IDX), MedMNIST 2D/3D (npz), class-per-folder images
(SARS-CoV-2 CT), the COVID-19 chest X-ray collection, MRNet, Medical Segmentation Decathlon tasks (2D slices),
DICOM/NIfTI folders (docs/datasets.md), and on-disk caches of any of them for data larger than memory
(:mod:`medrobust.data.cache`).

Use :func:`load` (``medrobust.data.load("phantom-ct", split="test")``); every dataset yields
``(x, target, index)`` with ``x`` float in [0, 1], shape ``(C, H, W)`` or ``(C, D, H, W)`` for volumes.
"""

from medrobust.data import (  # noqa: F401  (register loaders)
    cache,
    catalog,
    covid_cxr,
    folders,
    idx,
    medio,
    medmnist,
    mrnet,
    msd,
    phantom,
    phantom_dense,
    phantom_det,
)
from medrobust.data.base import ArrayDataset, DatasetInfo, task_for
from medrobust.data.registry import DATASETS, load

__all__ = ["DATASETS", "ArrayDataset", "DatasetInfo", "load", "task_for"]
