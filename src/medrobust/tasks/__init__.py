"""Prediction tasks: per-sample loss, correctness predicate and metrics."""

from __future__ import annotations

from typing import Any

from medrobust.errors import DataError
from medrobust.tasks.base import Task
from medrobust.tasks.classification import ClassificationTask
from medrobust.tasks.detection import DetectionTask
from medrobust.tasks.landmark import LandmarkTask
from medrobust.tasks.segmentation import SegmentationTask

DenseTask = SegmentationTask | LandmarkTask | DetectionTask
AnyTask = ClassificationTask | SegmentationTask | LandmarkTask | DetectionTask


def task_from_dict(state: dict[str, Any]) -> AnyTask:
    """Rebuild a task from ``dataclasses.asdict(task)`` (as stored in checkpoints); tuples come back as tuples."""
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in state.items()}
    kind = fields.get("kind")
    if kind == "segmentation":
        return SegmentationTask(**fields)
    if kind == "landmark":
        return LandmarkTask(**fields)
    if kind == "detection":
        return DetectionTask(**fields)
    if kind in ("multiclass", "binary", "multilabel"):
        return ClassificationTask(**fields)
    raise DataError(f"unknown task kind {kind!r} in the saved task; the checkpoint was written by a newer medrobust")


__all__ = [
    "AnyTask",
    "ClassificationTask",
    "DenseTask",
    "DetectionTask",
    "LandmarkTask",
    "SegmentationTask",
    "Task",
    "task_from_dict",
]
