"""Helpers shared by the CLI commands."""

from __future__ import annotations

from typing import Any


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One line summarising an epoch record of the training history."""
    parts = [f"epoch {record['epoch']:>3}/{epochs}", f"loss {record['train_loss']:.4f}"]
    if "train_accuracy" in record:
        parts.append(f"train acc {record['train_accuracy']:.3f}")
    if "val_accuracy" in record:
        parts.append(f"val acc {record['val_accuracy']:.3f}")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)


CLEAN_METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity")
