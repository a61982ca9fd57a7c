"""Datasets yielding ``(x, target, index)`` with ``x`` float in [0, 1].

Every loader (the embedded phantom, Fashion-MNIST, MedMNIST, …) returns an :class:`ArrayDataset`: the whole
split as a uint8 (or float) array plus :class:`DatasetInfo` metadata. Keeping splits in memory lets the
training loop slice batches directly (no per-item Python overhead) and lets adaptive-margin methods index
per-sample state by ``index``. A split too large for memory is converted once to an on-disk cache
(:mod:`medrobust.data.cache`) whose images are :class:`Rows` read batch by batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from medrobust.errors import DataError
from medrobust.tasks import AnyTask, ClassificationTask, DetectionTask, LandmarkTask, SegmentationTask
from medrobust.tasks.records import kind_capabilities

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a dataset split.

    Attributes:
        name: registry name, e.g. ``"phantom-ct"``.
        task_kind: ``"multiclass"``, ``"binary"``, ``"multilabel"``, ``"segmentation"``, ``"landmark"`` or
            ``"detection"``.
        channels: image channels ``C``.
        spatial: spatial shape, ``(H, W)`` or ``(D, H, W)``.
        num_classes: classes (or labels, for multi-label).
        class_names: one name per class.
        split: ``"train"``, ``"val"`` or ``"test"``.
        extra: loader-specific facts (seed, source path, split rule, …), JSON-serialisable.
    """

    name: str
    task_kind: str
    channels: int
    spatial: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    split: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return dataclasses.asdict(self)


def task_for(info: DatasetInfo, **options: Any) -> AnyTask:
    """The task that matches a dataset's metadata (``info.extra["task"]`` holds default task options)."""
    kind = info.task_kind
    options = {**info.extra.get("task", {}), **options}
    if kind == "segmentation":
        return SegmentationTask(num_classes=info.num_classes, class_names=info.class_names, **options)
    if kind == "landmark":
        return LandmarkTask(num_landmarks=info.num_classes, class_names=info.class_names, **options)
    if kind == "detection":
        return DetectionTask(num_classes=info.num_classes, class_names=info.class_names, **options)
    if kind not in ("multiclass", "binary", "multilabel"):
        raise DataError(f"dataset {info.name!r} has task kind {kind!r}, which has no task implementation yet")
    return ClassificationTask(kind=kind, num_classes=info.num_classes, class_names=info.class_names, **options)  # type: ignore[arg-type]


class Rows(Protocol):
    """Leading-axis indexed images ``(N, C, *spatial)``: a tensor in memory, or
    :class:`~medrobust.data.npy_rows.NpyRows` on disk; indexing (an int, a slice or an index tensor) returns a
    tensor."""

    @property
    def shape(self) -> torch.Size:
        """``(N, C, *spatial)``."""

    @property
    def dtype(self) -> torch.dtype:
        """uint8 (scaled by 1/255) or floating."""

    def __getitem__(self, index: Any) -> Tensor: ...

    def __len__(self) -> int: ...

    def numel(self) -> int:
        """Number of elements."""


class ArrayDataset(torch.utils.data.Dataset[tuple[Tensor, Tensor, int]]):
    """A split held in memory.

    Args:
        images: ``(N, C, *spatial)`` uint8 (scaled by 1/255) or floating in [0, 1].
        targets: ``(N,)`` integer labels, ``(N, L)`` 0/1 for multi-label, ``(N, *spatial)`` integer masks
            (segmentation), ``(N, K, 2)`` float (row, col) pixel coordinates (landmarks) or ``(N, G, 5)`` float
            boxes ``(x0, y0, x1, y1, class)``, class −1 for padding (detection).
        info: metadata.
        extras: optional per-sample arrays (e.g. lesion masks ``(N, H, W)``, centres ``(N, 2)``).

    Shape:
        ``ds[i]`` returns ``(x, target, i)`` with ``x`` float32 ``(C, *spatial)`` in [0, 1].
    """

    images: Rows

    def __init__(
        self,
        images: NDArray[Any],
        targets: NDArray[Any],
        info: DatasetInfo,
        extras: dict[str, NDArray[Any]] | None = None,
    ) -> None:
        _validate(images, targets, info)
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        raw = torch.from_numpy(np.ascontiguousarray(targets))
        self.targets = raw.float() if info.task_kind in ("landmark", "detection") else raw.long()
        self.info = info
        self.extras = dict(extras or {})

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _to_float(self, raw: Tensor) -> Tensor:
        if raw.dtype == torch.uint8:
            return raw.float().div_(255.0)
        return raw.float()

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        return self._to_float(self.images[index]), self.targets[index], int(index)

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Gather a batch ``(x (B, C, ...), target (B, ...), index (B,))`` without per-item overhead."""
        return self._to_float(self.images[indices]), self.targets[indices], indices

    def task(self, **options: Any) -> AnyTask:
        """The task matching this dataset (see :func:`task_for`)."""
        return task_for(self.info, **options)

    def class_counts(self) -> NDArray[np.int64]:
        """Samples per class (single-label datasets)."""
        return np.bincount(self.targets.numpy().ravel(), minlength=self.info.num_classes)

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[1:])
        return f"ArrayDataset({self.info.name!r}, split={self.info.split!r}, n={len(self)}, shape={shape})"


def _validate(images: NDArray[Any], targets: NDArray[Any], info: DatasetInfo) -> None:
    where = f"dataset {info.name!r} ({info.split})"
    if images.ndim != 2 + len(info.spatial) or images.shape[1] != info.channels:
        raise DataError(f"{where}: images have shape {images.shape}; expected (N, {info.channels}, *{info.spatial})")
    if len(images) != len(targets):
        raise DataError(f"{where}: {len(images)} images but {len(targets)} labels")
    if len(images) == 0:
        raise DataError(f"{where}: the split is empty")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise DataError(f"{where}: images must be uint8 or float, got {images.dtype}")
        finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
        if not finite.all():
            raise DataError(f"{where}: image {int(np.argmin(finite))} contains NaN or Inf; fix or drop it")
        if images.min() < 0 or images.max() > 1:
            raise DataError(f"{where}: float images must lie in [0, 1]; got [{images.min():.3g}, {images.max():.3g}]")
    if info.task_kind in ("multiclass", "binary"):
        t = np.asarray(targets)
        if t.ndim != 1:
            raise DataError(f"{where}: labels must have shape (N,), got {t.shape}")
        if t.min() < 0 or t.max() >= info.num_classes:
            raise DataError(
                f"{where}: label {int(t.max() if t.max() >= info.num_classes else t.min())} "
                f"is outside 0..{info.num_classes - 1}"
            )
    if kind_capabilities(info.task_kind).dense:
        _validate_dense(np.asarray(targets), info, where)


def _validate_dense(t: NDArray[Any], info: DatasetInfo, where: str) -> None:
    """Segmentation masks ``(N, *spatial)`` integer in ``0..K−1``; landmarks ``(N, K, 2)`` finite float; detection
    boxes ``(N, G, 5)`` as :meth:`DetectionTask.check_target` wants them."""
    if info.task_kind == "segmentation":
        if t.shape[1:] != tuple(info.spatial) or not np.issubdtype(t.dtype, np.integer):
            raise DataError(f"{where}: masks must be integer (N, *{info.spatial}); got {t.dtype} {t.shape}")
        if t.min() < 0 or t.max() >= info.num_classes:
            raise DataError(f"{where}: mask labels must lie in 0..{info.num_classes - 1}; got {t.min()}..{t.max()}")
        return
    if info.task_kind == "detection":
        if not np.issubdtype(t.dtype, np.floating):
            raise DataError(f"{where}: detection boxes must be float (N, G, 5); got {t.dtype} {t.shape}")
        try:
            DetectionTask(num_classes=info.num_classes).check_target(torch.from_numpy(np.ascontiguousarray(t)))
        except DataError as err:
            raise DataError(f"{where}: {err}") from None
        return
    if t.ndim != 3 or t.shape[1:] != (info.num_classes, 2) or not np.issubdtype(t.dtype, np.floating):
        raise DataError(f"{where}: landmarks must be float (N, {info.num_classes}, 2); got {t.dtype} {t.shape}")
    if not np.isfinite(t).all():
        raise DataError(f"{where}: landmarks contain NaN or Inf; drop the samples without them")
