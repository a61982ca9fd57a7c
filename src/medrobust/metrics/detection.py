"""Object-detection metrics: COCO mean average precision and lesion sensitivity at a fixed false-positive rate.

:func:`coco_map` reproduces ``pycocotools.cocoeval.COCOeval`` for boxes (``iouType="bbox"``, no crowd regions,
area range "all", at most ``max_dets`` detections per image and class): per image and class, detections in
descending score order (stable) take the unmatched ground-truth box of highest IoU ≥ t; per class, the matches of
every image are pooled in descending score order, precision is made monotone and read at 101 recall points
(0, 0.01, …, 1; 0 beyond the largest recall); mAP is the mean over the IoU thresholds, recall points and the
classes that have ground truth. IoU is COCO's: boxes ``(x0, y0, x1, y1)`` with area ``(x1 − x0)(y1 − y0)``.
The test suite compares it with pycocotools on a fixed set of boxes.

:func:`sensitivity_at_fppi` is the lesion-level detection rate at a fixed number of false positives per image
(the operating point of an FROC curve), with detections matched at IoU ≥ 0.5 as above.

Reference: T.-Y. Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014, and the evaluation code of
``cocodataset/cocoapi`` (``PythonAPI/pycocotools/cocoeval.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

COCO_IOUS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
_EPS = float(np.spacing(1))


@dataclass(frozen=True)
class Detections:
    """One image's boxes: ``boxes`` float ``(D, 4)`` ``(x0, y0, x1, y1)``, ``labels`` int ``(D,)`` and ``scores``
    ``(D,)`` (ground truth: no scores needed; ones)."""

    boxes: NDArray[np.float64]
    labels: NDArray[np.int64]
    scores: NDArray[np.float64]


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """COCO IoU ``(..., D, G)`` of boxes ``a`` ``(..., D, 4)`` and ``b`` ``(..., G, 4)`` in ``(x0, y0, x1, y1)``;
    0 where the union is empty. Differentiable in the coordinates."""
    w = torch.minimum(a[..., :, None, 2], b[..., None, :, 2]) - torch.maximum(a[..., :, None, 0], b[..., None, :, 0])
    h = torch.minimum(a[..., :, None, 3], b[..., None, :, 3]) - torch.maximum(a[..., :, None, 1], b[..., None, :, 1])
    inter = w.clamp(min=0) * h.clamp(min=0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def _match(ious: NDArray[np.float64], thresholds: Sequence[float]) -> NDArray[np.bool_]:
    """Greedy COCO matching ``(T, D)``: detection ``d`` (descending score) is a true positive at threshold ``t``
    when it takes an unmatched ground-truth box with IoU ≥ t: the best one, on ties the last (as COCOeval)."""
    matched = np.zeros((len(thresholds), ious.shape[0]), dtype=bool)
    if ious.size == 0:
        return matched
    near = np.flatnonzero(ious.max(axis=1) >= min(thresholds))  # only these can match at any threshold
    for ti, t in enumerate(thresholds):
        free = np.ones(ious.shape[1], dtype=bool)
        for d in near:
            values = np.where(free, ious[d], -1.0)
            last = len(values) - 1 - int(np.argmax(values[::-1]))
            if values[last] >= min(t, 1 - 1e-10):
                free[last], matched[ti, d] = False, True
    return matched


def _class_matches(
    dets: Sequence[Detections], truth: Sequence[Detections], label: int, thresholds: Sequence[float], max_dets: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_], int]:
    """Scores ``(M,)`` and true-positive flags ``(T, M)`` of class ``label``'s detections pooled over images (image
    order, each image's by descending score, at most ``max_dets``), and its number of ground-truth boxes."""
    scores, flags, n_true = [], [], 0
    for det, gt in zip(dets, truth):
        gt_boxes = gt.boxes[gt.labels == label]
        mine = det.labels == label
        order = np.argsort(-det.scores[mine], kind="mergesort")[:max_dets]
        boxes, s = det.boxes[mine][order], det.scores[mine][order]
        n_true += len(gt_boxes)
        scores.append(s)
        flags.append(_match(box_iou(torch.from_numpy(boxes), torch.from_numpy(gt_boxes)).numpy(), thresholds))
    return np.concatenate(scores), np.concatenate(flags, axis=1), n_true


def _precision_at_recall(tp: NDArray[np.bool_], n_true: int) -> NDArray[np.float64]:
    """Interpolated precision ``(101,)`` at :data:`RECALL_POINTS` of flags ``tp`` in descending score order."""
    tp_sum = np.cumsum(tp, dtype=np.float64)
    fp_sum = np.cumsum(~tp, dtype=np.float64)
    recall = tp_sum / n_true
    precision = tp_sum / (tp_sum + fp_sum + _EPS)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone from the right
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    out = np.zeros(len(RECALL_POINTS))
    ok = idx < len(precision)
    out[ok] = precision[idx[ok]]
    return out


def coco_map(
    dets: Sequence[Detections],
    truth: Sequence[Detections],
    num_classes: int,
    iou_thresholds: Sequence[float] = COCO_IOUS,
    max_dets: int = 100,
) -> dict[str, float]:
    """COCO ``map`` (mean over ``iou_thresholds``, 0.5:0.95 by default), ``map@0.5`` and ``map@0.75``.

    Args:
        dets: per image its detections (scores used).
        truth: per image its ground-truth boxes (same image order).
        num_classes: classes ``0..num_classes − 1``; those without ground truth are left out of the mean.
        iou_thresholds: IoU thresholds (must include 0.5 and 0.75 for those entries).
        max_dets: detections kept per image and class (highest scores).

    Returns:
        The three averages; NaN when no class has ground truth.
    """
    thresholds = [float(t) for t in iou_thresholds]
    per_class = []
    for label in range(num_classes):
        scores, flags, n_true = _class_matches(dets, truth, label, thresholds, max_dets)
        if n_true == 0:
            continue
        order = np.argsort(-scores, kind="mergesort")
        per_class.append(np.stack([_precision_at_recall(f[order], n_true) for f in flags]))
    if not per_class:
        return {"map": float("nan"), "map@0.5": float("nan"), "map@0.75": float("nan")}
    precision = np.stack(per_class, axis=1)  # (T, classes, 101)
    out = {"map": float(precision.mean())}
    for t in (0.5, 0.75):
        hit = [i for i, v in enumerate(thresholds) if abs(v - t) < 1e-9]
        out[f"map@{t:g}"] = float(precision[hit[0]].mean()) if hit else float("nan")
    return out


def sensitivity_at_fppi(
    dets: Sequence[Detections], truth: Sequence[Detections], num_classes: int, fppi: float, iou: float = 0.5,
    max_dets: int = 100,
) -> float:  # fmt: skip
    """Fraction of true lesions detected (class-aware, IoU ≥ ``iou``) at the lowest score threshold whose false
    positives per image stay ≤ ``fppi``; NaN without ground truth."""
    scores, flags, n_true = [], [], 0
    for label in range(num_classes):
        s, f, n = _class_matches(dets, truth, label, [iou], max_dets)
        scores.append(s)
        flags.append(f[0])
        n_true += n
    if n_true == 0:
        return float("nan")
    s, tp = np.concatenate(scores), np.concatenate(flags)
    order = np.argsort(-s, kind="mergesort")
    s, tp = s[order], tp[order]
    last = np.r_[s[1:] != s[:-1], True]  # a threshold keeps every detection of equal score
    tps, fps = np.cumsum(tp)[last], np.cumsum(~tp)[last]
    ok = fps <= fppi * len(truth)
    return float(tps[ok].max() / n_true) if ok.any() else 0.0
