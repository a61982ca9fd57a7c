"""Figures of the HTML report that have no file of their own: training curves and ROC under attack.

matplotlib's object API on the Agg canvas (no pyplot state, no display); every function returns PNG bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from medrobust.reporting.gallery import RocCurve
from medrobust.reporting.png import png_bytes
from medrobust.reporting.tables import format_level

_LOSS_KEYS = ("train_loss", "val_loss")
_ACC_KEYS = ("train_accuracy", "val_accuracy", "val_dice", "val_mre")
_MARGIN_KEYS = ("margin_q10", "margin_q50", "margin_q90")


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(int(r["epoch"]), float(r[key])) for r in history if isinstance(r.get(key), int | float)]
    pts = [(e, v) for e, v in pts if math.isfinite(v)]
    return [e for e, _ in pts], [v for _, v in pts]


def training_curves(history: Sequence[dict[str, Any]]) -> bytes | None:
    """Loss, accuracy (or Dice / MRE) and, for IMA/AMAT runs, the margin quantiles per epoch; ``None`` when the
    history is empty."""
    panels = [keys for keys in (_LOSS_KEYS, _ACC_KEYS, _MARGIN_KEYS) if any(_series(history, k)[0] for k in keys)]
    if not panels:
        return None
    fig = Figure(figsize=(4.2 * len(panels), 3.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    titles = {_LOSS_KEYS: "loss", _ACC_KEYS: "accuracy / metric", _MARGIN_KEYS: "margin quantiles (IMA/AMAT)"}
    for ax, keys in zip(axes, panels):
        for k in keys:
            epochs, values = _series(history, k)
            if epochs:
                ax.plot(epochs, values, marker="o", ms=3, label=k.replace("_", " "))
        ax.set(xlabel="epoch", title=titles[keys])
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    return png_bytes(fig)


def roc_figure(curves: Sequence[RocCurve], threat: str, norm: str | None) -> bytes:
    """ROC curves of the positive class: clean and under ``threat`` at each ε, with their AUC."""
    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, c in enumerate(curves):
        name = "clean" if c.threat == "clean" else f"ε {format_level(c.eps)}"
        ax.plot(c.fpr, c.tpr, lw=1.6, color=f"C{i}", label=f"{name} (AUC {c.auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01),
           title=f"ROC under {threat}" + (f" ({norm})" if norm else ""))  # fmt: skip
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return png_bytes(fig)
