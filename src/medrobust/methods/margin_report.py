"""Per-epoch diagnostics of adaptive-margin training: margin quantiles, accuracy-vs-ε estimated from the margins,
and the margin histogram figure (Ma & Liang, IMA, CMPB 2023, arXiv 2005.09147)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def accuracy_from_margins(margins: Tensor, correct: Tensor, eps: Sequence[float]) -> list[float]:
    """Training accuracy at each ε estimated from the margins: fraction of samples with ``margin ≥ ε``.

    Misclassified samples count as margin −1 (wrong at every ε, including 0).

    Shape:
        - margins: ``(N,)``; correct: bool ``(N,)``.
    """
    if margins.numel() == 0:
        return [float("nan")] * len(eps)
    estimate = torch.where(correct, margins, torch.full_like(margins, -1.0))
    levels = torch.as_tensor(list(eps), dtype=margins.dtype, device=margins.device)
    return (estimate[None, :] >= levels[:, None]).float().mean(dim=1).tolist()


def margin_logs(margins: Tensor, correct: Tensor, eps: Sequence[float]) -> dict[str, float]:
    """Quantiles (``margin_q10/q50/q90``), ``margin_mean`` and ``margin_acc@ε`` for the history.

    Shape:
        - margins: ``(N,)`` of the samples seen this epoch; correct: bool ``(N,)``.
    """
    m = margins.float()
    if m.numel() == 0:
        return {}
    q = torch.quantile(m, torch.tensor([0.1, 0.5, 0.9], dtype=m.dtype, device=m.device)).tolist()
    logs = {"margin_q10": q[0], "margin_q50": q[1], "margin_q90": q[2], "margin_mean": float(m.mean())}
    acc = accuracy_from_margins(m, correct, eps)
    logs.update({f"margin_acc@{e:g}": a for e, a in zip(eps, acc)})
    return logs


def save_margin_figure(
    path: str | Path, margins: Tensor, correct: Tensor, *, e_max: float, epoch: int, norm: str
) -> None:
    """Write a PNG: histogram of the clean-correct samples' margins and the accuracy-vs-ε estimate.

    Uses matplotlib's object API with the Agg canvas (no pyplot state, no display needed).

    Shape:
        - margins: ``(N,)``; correct: bool ``(N,)``.
    """
    from matplotlib.figure import Figure

    m = margins.detach().float().cpu()
    ok = correct.detach().cpu()
    top = e_max if math.isfinite(e_max) else float(m.max()) if m.numel() else 1.0
    grid = np.linspace(0.0, max(top, 1e-12), 61)
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    hist, curve = fig.subplots(1, 2)
    hist.hist(m[ok].numpy(), bins=50, range=(0.0, max(top, 1e-12)), color="tab:blue")
    hist.set(
        xlabel=f"margin ({norm})",
        ylabel="samples",
        title=f"epoch {epoch}: {int(ok.sum())} correct, {int((~ok).sum())} misclassified",
    )
    curve.plot(grid, accuracy_from_margins(m, ok, grid.tolist()), color="tab:orange")
    curve.set(
        xlabel=f"ε ({norm})", ylabel="accuracy (estimated)", ylim=(0, 1.02), title="training accuracy from margins"
    )
    curve.grid(True, alpha=0.3)
    fig.savefig(path, dpi=80)


def save_margin_arrays(path: str | Path, margins: Tensor, correct: Tensor) -> None:
    """Write the margins and the clean-correct flags as an ``.npz`` (keys ``margins``, ``correct``), atomically;
    studies read them back to draw margin histograms over epochs.

    Shape:
        - margins: ``(N,)``; correct: bool ``(N,)``.
    """
    from medrobust.training.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, margins=margins.detach().float().cpu().numpy(), correct=correct.detach().cpu().numpy())
    atomic_write_bytes(path, buf.getvalue())
