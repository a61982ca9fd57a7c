"""Figures as views of :class:`~medrobust.evaluation.results.Results` (matplotlib, Agg canvas, PNG).

- :func:`robustness_curves`: accuracy (or any metric) vs ε for one threat, one line per run, with the clean
  value at ε = 0 and the majority-class rate as a dashed reference (a constant classifier's score).
- :func:`reliability_diagram`: per-bin accuracy vs confidence of the clean top-label predictions (Guo et al.
  2017), with the calibration errors in the title and the bin counts below.
- :func:`roc_curves`: ROC panels of binary scores (e.g. clean and under FGSM), each curve labelled with its AUC.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from medrobust.evaluation.outputs import RocCurve
from medrobust.evaluation.results import Results
from medrobust.metrics.classification import roc_auc_binary, roc_curve
from medrobust.reporting.tables import format_level
from medrobust.training.checkpoint import atomic_write_bytes

_NORM_TEXT = {"linf": "L∞", "l2": "L2"}


def _save(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Render ``fig`` in the format of ``path``'s suffix (PNG when none) and write it atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _in_255ths(levels: Sequence[float]) -> bool:
    return all("/" in format_level(v) or v == 0 for v in levels) and any(v > 0 for v in levels)


def robustness_curves(
    runs: Sequence[tuple[str, Results]],
    path: str | Path,
    *,
    threat: str,
    norm: str | None = None,
    metric: str = "accuracy",
    title: str | None = None,
) -> Path:
    """Plot ``metric`` vs level of ``threat`` for each ``(name, results)``; returns the PNG path.

    The clean value is drawn at level 0 when the grid has no level 0 (as in the AUC-robustness).
    """
    curves = []
    for name, res in runs:
        levels, values = res.curve(threat, metric, norm)
        if levels and levels[0] > 0:
            levels, values = [0.0, *levels], [res.value("clean", metric), *values]
        if levels:
            curves.append((name, levels, values))
    if not curves:
        raise ValueError(f"no rows for threat {threat!r} (norm {norm}) and metric {metric!r} in the given results")
    scale = 255.0 if norm == "linf" and _in_255ths([v for _, lv, _ in curves for v in lv]) else 1.0
    fig = Figure(figsize=(5.6, 3.8))
    ax = fig.add_subplot()
    for i, (name, levels, values) in enumerate(curves):
        ax.plot(np.asarray(levels) * scale, values, marker="o", ms=4, lw=1.8, label=name, color=f"C{i}")
    if scale != 1.0:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    rates = [float(r.summary["majority_rate"]) for _, r in runs if r.summary.get("majority_rate") is not None]
    if metric == "accuracy" and rates:
        ax.axhline(max(rates), color="0.45", ls="--", lw=1, label="majority-class rate")
    unit = " (×1/255)" if scale != 1.0 else ""
    xlabel = f"ε, {_NORM_TEXT.get(norm, norm)}{unit}" if norm else f"{threat} level"
    label = metric.replace("_", " ")
    default_title = f"{label} under {threat}" + (f" ({_NORM_TEXT.get(norm, norm)})" if norm else "")
    ax.set(xlabel=xlabel, ylabel=label, title=title or default_title)
    if metric in ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity"):
        ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def reliability_diagram(
    results: Results, path: str | Path, *, title: str | None = None, bins: dict[str, Any] | None = None
) -> Path:
    """Clean reliability diagram from ``results.summary["reliability"]`` (or from ``bins``, e.g. the bins of one
    attack level, ``summary["threats"][i]["reliability"][k]``); returns the PNG path."""
    rel = bins if bins is not None else results.summary.get("reliability")
    if not rel:
        raise ValueError("these results hold no reliability bins; re-run the evaluation")
    edges = np.asarray(rel["edges"], dtype=float)
    acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], dtype=float)
    conf = np.array([np.nan if v is None else v for v in rel["confidence"]], dtype=float)
    count = np.asarray(rel["count"], dtype=float)
    width, centres = np.diff(edges), (edges[:-1] + edges[1:]) / 2
    fig = Figure(figsize=(4.6, 5.0))
    ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    ok = count > 0
    ax.bar(centres[ok], acc[ok], width[ok], color="C0", edgecolor="white", lw=0.6, label="accuracy")
    ax.bar(centres[ok], conf[ok] - acc[ok], width[ok], bottom=acc[ok], color="C3", alpha=0.35, edgecolor="C3",
           lw=0.6, hatch="//", label="gap to confidence")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="0.3", ls="--", lw=1, label="perfect calibration")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    clean = results.summary.get("clean", {}) if bins is None else {}
    stats = ", ".join(f"{k.upper()} {100 * clean[k]:.2f}%" for k in ("rmsce", "ece") if _finite(clean.get(k)))
    ax.set_title(title or f"reliability (clean){': ' + stats if stats else ''}", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    axc.bar(centres, count, width, color="0.55", edgecolor="white", lw=0.6)
    axc.set(xlabel="confidence (top label)", ylabel="samples")
    for a in (ax, axc):
        a.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def _finite(v: object) -> bool:
    return isinstance(v, float) and math.isfinite(v)


def roc_curves(panels: Sequence[tuple[str, Sequence[RocCurve]]], path: str | Path, *, title: str = "") -> Path:
    """One ROC panel per ``(panel title, curves)``; each curve is labelled with its AUC. Returns the PNG path.

    Shape:
        each curve's targets and scores ``(N,)``; scores increase with the positive class (e.g. log-odds).
    """
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
    return _save(fig, path, dpi=130)
