"""Prediction tasks: per-sample loss, correctness predicate and metrics."""

from medrobust.tasks.base import Task
from medrobust.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask", "Task"]
