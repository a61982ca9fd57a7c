"""Clean and FGSM scores of a binary model over a split, their metrics, and ROC-curve figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from medrobust.attacks.fgsm import FGSM
from medrobust.data.base import ArrayDataset
from medrobust.metrics.classification import roc_auc_binary, roc_curve
from medrobust.runtime import eval_mode, model_device
from medrobust.tasks.classification import ClassificationTask
from medrobust.training.loop import batches, predict

METRIC_NAMES = ("accuracy", "auc", "sensitivity", "specificity")
Curve = tuple[str, Tensor, Tensor]  # label, targets (N,), positive-class scores (N,)


def outputs_under_fgsm(
    model: nn.Module,
    data: ArrayDataset,
    task: ClassificationTask,
    *,
    eps: float,
    norm: str = "linf",
    batch_size: int = 64,
    device: torch.device | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Model outputs over ``data`` on clean inputs (``eps == 0``) or on FGSM examples at ``eps`` (eval mode).

    Shape:
        Returns ``outputs (N, K)`` and ``targets (N,)`` on the CPU.
    """
    device = device or model_device(model)
    if eps == 0:
        return predict(model, data, batch_size=batch_size, device=device)
    attack = FGSM(norm=norm)  # type: ignore[arg-type]
    gen = torch.Generator(device=device).manual_seed(seed)
    outs, ys = [], []
    with eval_mode(model):
        for b in batches(data, batch_size, None):
            x, y = b.x.to(device), b.target.to(device)
            outs.append(attack(model, x, y, task=task, eps=eps, generator=gen).output.detach().float().cpu())
            ys.append(b.target)
    return torch.cat(outs), torch.cat(ys)


def binary_metrics(task: ClassificationTask, outputs: Tensor, targets: Tensor) -> dict[str, float]:
    """Accuracy, ROC AUC, sensitivity and specificity (threshold 0.5) of ``task.positive_class``.

    The AUC ranks :func:`positive_scores` (logits for a one-logit model), so confident outputs whose float32
    probabilities saturate at 1 do not tie.
    """
    m = task.metrics(outputs, targets)
    m["auc"] = roc_auc_binary(targets.cpu().numpy() == task.positive_class, positive_scores(task, outputs).numpy())
    return {k: float(m[k]) for k in METRIC_NAMES}


def positive_scores(task: ClassificationTask, outputs: Tensor) -> Tensor:
    """A score increasing with the positive class's probability, ``(N,)``: the (signed) logit of a one-logit model,
    else the probability."""
    if task.single_logit:
        z = outputs.detach().float().cpu().reshape(-1)
        return z if task.positive_class == 1 else -z
    return task.probabilities(outputs)[:, task.positive_class].detach().cpu()


def roc_figure(panels: Sequence[tuple[str, Sequence[Curve]]], path: str | Path, *, title: str = "") -> Path:
    """One ROC panel per ``(panel title, curves)``; each curve is labelled with its AUC. Returns the PNG path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(panels), 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, curves) in zip(axes, panels):
        for i, (label, y, s) in enumerate(curves):
            fpr, tpr, _ = roc_curve(y.numpy(), s.numpy())
            auc = roc_auc_binary(y.numpy(), s.numpy())
            ax.plot(fpr, tpr, lw=1.6, color=f"C{i}", label=f"{label} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
        ax.set(xlabel="1 − specificity (FPR)", ylabel="sensitivity (TPR)", title=name, xlim=(0, 1), ylim=(0, 1.01))
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return path


def jsonable(metrics: dict[str, float]) -> dict[str, Any]:
    """Metrics with NaN written as None."""
    return {k: (None if not np.isfinite(v) else v) for k, v in metrics.items()}
