"""Training: :func:`fit`, optimizers/schedules, checkpoints, and run folders."""

from medrobust.training.loop import History, fit, predict, resolve_device

__all__ = ["History", "fit", "predict", "resolve_device"]
