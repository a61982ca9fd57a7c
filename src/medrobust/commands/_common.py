"""Helpers shared by the CLI commands."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def format_value(v: Any) -> str:
    """Floats with 4 decimals, NaN as '—', others as str."""
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [[str(h) for h in header]] + [[format_value(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


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
