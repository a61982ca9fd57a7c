"""The ``summary`` block of :class:`~medrobust.evaluation.results.Results`.

Per threat: the accuracy curve, AUC-robustness (trapezoid over ``[0] + levels`` with the clean accuracy at 0,
divided by the largest level; Ma & Liang 2023) and mean accuracy over the levels > 0 (Martinez-Martinez &
Brown 2022), always beside the clean accuracy and the majority-class rate, since a constant classifier scores
well on both. Also the clean metrics and the clean top-label reliability-diagram bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from medrobust.evaluation.checks import majority_rate
from medrobust.evaluation.results import json_safe
from medrobust.evaluation.threats import ThreatSpec
from medrobust.metrics.calibration import reliability_bins
from medrobust.metrics.robustness import auc_robustness, mean_adversarial_accuracy
from medrobust.tasks.base import Capabilities


def summarize(
    rows: Sequence[dict[str, Any]],
    grid: Sequence[ThreatSpec],
    targets: Tensor,
    clean_probs: Tensor | None,
    capabilities: Capabilities,
) -> dict[str, Any]:
    """Build the summary dict from the tidy rows of an evaluation of a task with ``capabilities``.

    Dense tasks get ``curves`` of every metric but the predicate rate (``accuracy``) per threat, and no
    majority-class rate.

    Shape:
        ``targets (N, *)``; ``clean_probs (N, K)`` from ``task.probabilities`` (``None`` skips reliability bins).
    """
    clean = {r["metric"]: r["value"] for r in rows if r["threat"] == "clean"}
    out: dict[str, Any] = {
        "clean_accuracy": clean["accuracy"],
        "majority_rate": majority_rate(targets) if capabilities.has_majority_rate else None,
        "clean": clean,
        "threats": [_threat(rows, s, clean["accuracy"], capabilities.dense) for s in grid if s.kind != "clean"],
    }
    if clean_probs is not None:
        b = reliability_bins(clean_probs.numpy(), targets.detach().cpu().numpy())
        out["reliability"] = json_safe({"edges": b.edges.tolist(), "confidence": b.confidence.tolist(),
                                        "accuracy": b.accuracy.tolist(), "count": b.count.tolist()})  # fmt: skip
    return out


def _threat(rows: Sequence[dict[str, Any]], spec: ThreatSpec, clean_accuracy: float, dense: bool) -> dict[str, Any]:
    mine = [r for r in rows if r["threat"] == spec.threat and r["norm"] == spec.norm]
    acc = {r["level"]: r["value"] for r in mine if r["metric"] == "accuracy"}
    levels = sorted(acc)
    accuracy = [acc[v] for v in levels]
    has_positive = any(v > 0 for v in levels)
    out = {
        "threat": spec.threat,
        "kind": spec.kind,
        "name": spec.name,
        "norm": spec.norm,
        "levels": levels,
        "accuracy": accuracy,
        "clean_accuracy": clean_accuracy,
        "auc_robustness": auc_robustness(clean_accuracy, levels, accuracy) if has_positive else None,
        "mean_accuracy": mean_adversarial_accuracy(levels, accuracy) if has_positive else None,
    }
    if dense:
        clean = {r["metric"]: r["value"] for r in rows if r["threat"] == "clean"}
        out.update(_dense_curves(mine, levels, clean if has_positive else None))
    return out


def _dense_curves(
    rows: Sequence[dict[str, Any]], levels: list[float], clean: dict[str, float] | None
) -> dict[str, Any]:
    """Dense-task curves: ``curves[metric]`` over ``levels`` for every metric but the predicate rate (Dice; MRE,
    SDR), and the AUC-robustness (same trapezoid as for accuracy, clean value at 0) of the bounded ones (not MRE)."""
    values: dict[str, dict[float, float]] = {}
    for r in rows:
        if r["metric"] != "accuracy":
            values.setdefault(r["metric"], {})[r["level"]] = r["value"]
    if not values:
        return {}
    curves = {m: [v.get(lv, float("nan")) for lv in levels] for m, v in values.items()}
    auc = {m: auc_robustness(clean[m], levels, c) for m, c in curves.items()
           if clean is not None and m in clean and not m.startswith("mre")}  # fmt: skip
    return {"curves": curves, "metric_auc_robustness": auc}
