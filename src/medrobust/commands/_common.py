"""Helpers shared by the CLI commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medrobust.reporting.tables import CellKind, Table


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable as plain text): float columns with 4 decimals, missing values as '—'."""
    text: CellKind = "text"
    kinds = tuple(_kind(col) for col in zip(*rows)) if rows else (text,) * len(header)
    return Table(tuple(header), tuple(tuple(r) for r in rows), kinds).to_markdown()


def _kind(column: Sequence[Any]) -> CellKind:
    return "value" if all(isinstance(v, float) or v is None for v in column) else "text"


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
