"""Task records: a task's settings and :class:`~medrobust.tasks.base.Capabilities` as saved in ``results.json``.

Tables and reports read from a results file alone ask the record (:func:`record_capabilities`) instead of sniffing
metric names or kinds. Records written before capabilities were saved derive them from their ``kind`` in
:func:`kind_capabilities`, by asking a default task of that kind.

Example:
    >>> from medrobust.tasks.segmentation import SegmentationTask
    >>> record = task_record(SegmentationTask())
    >>> record["kind"], record["capabilities"]["headline_metrics"]
    ('segmentation', ['dice'])
    >>> record_capabilities(record) == record_capabilities({"kind": "segmentation"})  # an old record
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medrobust.errors import DataError
from medrobust.tasks.base import Capabilities, Task
from medrobust.tasks.classification import ClassificationTask
from medrobust.tasks.detection import DetectionTask
from medrobust.tasks.landmark import LandmarkTask
from medrobust.tasks.segmentation import SegmentationTask


def task_record(task: Task) -> dict[str, Any]:
    """``task``'s settings (tuples as lists), its ``kind`` and its capabilities under ``"capabilities"``."""
    fields: dict[str, Any] = {}
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(task).items()}
    return {**fields, "kind": task.kind, "capabilities": Capabilities.of(task).to_dict()}


def record_capabilities(record: Mapping[str, Any]) -> Capabilities:
    """The capabilities saved in a task record, or for an older record without them those of its ``kind``.

    An older record of a wrapped task (``{"base": {...}, "tau": …}``, AMAT's loss predicate) asks its base; a record
    without a kind (``Results`` built by hand) counts as classification, the results schema's original kind.
    """
    saved = record.get("capabilities")
    if saved is not None:
        if not isinstance(saved, Mapping):
            raise DataError("the task record has malformed capabilities; re-run 'medrobust evaluate'")
        return Capabilities.from_dict(saved)
    if "kind" not in record and isinstance(record.get("base"), Mapping):
        return record_capabilities(record["base"])
    return kind_capabilities(str(record.get("kind", "multiclass")), record.get("radii"))


def kind_capabilities(kind: str, radii: Any = None) -> Capabilities:
    """The capabilities of a default task of ``kind`` (a landmark task with ``radii`` when given)."""
    task: Task
    if kind == "segmentation":
        task = SegmentationTask()
    elif kind == "landmark":
        task = LandmarkTask(radii=tuple(radii)) if radii else LandmarkTask()
    elif kind == "detection":
        task = DetectionTask()
    elif kind in ("multiclass", "binary", "multilabel"):
        task = ClassificationTask(kind=kind)  # type: ignore[arg-type]
    else:
        raise DataError(
            f"unknown task kind {kind!r}; known: multiclass, binary, multilabel, segmentation, landmark, detection"
        )
    return Capabilities.of(task)
