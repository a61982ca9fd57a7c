"""Classification metrics: accuracy, balanced accuracy, ROC AUC, sensitivity, specificity, ROC curve.

All functions take NumPy arrays and match scikit-learn's definitions (the tests compare against it), without
requiring scikit-learn at run time.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exact matches. Shape: ``(N,)`` each (or ``(N, L)`` for exact-match multi-label)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.size == 0:
        return float("nan")
    eq = t == p
    return float(eq.reshape(len(t), -1).all(axis=1).mean())


def confusion(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> NDArray[np.int64]:
    """Confusion matrix ``C[true, pred]``, shape ``(K, K)``."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def recall_per_class(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> NDArray[np.float64]:
    """Recall of each class (NaN for a class absent from ``y_true``)."""
    c = confusion(y_true, y_pred, num_classes).astype(np.float64)
    support = c.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(c) / support, np.nan)


def specificity_per_class(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> NDArray[np.float64]:
    """One-vs-rest specificity of each class: TN / (TN + FP)."""
    c = confusion(y_true, y_pred, num_classes).astype(np.float64)
    total = c.sum()
    tp = np.diag(c)
    fp = c.sum(axis=0) - tp
    fn = c.sum(axis=1) - tp
    tn = total - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tn + fp > 0, tn / (tn + fp), np.nan)


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> float:
    """Mean recall over the classes present in ``y_true`` (scikit-learn's definition)."""
    r = recall_per_class(y_true, y_pred, num_classes)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def roc_curve(
    y_true: ArrayLike, score: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC curve of binary labels against scores: ``(fpr, tpr, thresholds)``, starting at (0, 0).

    Ties in ``score`` are one step, as in scikit-learn (``drop_intermediate=False``).
    """
    t = np.asarray(y_true).ravel().astype(bool)
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(t)[distinct].astype(np.float64)
    fps = (distinct + 1 - tps).astype(np.float64)
    pos, neg = tps[-1] if len(tps) else 0.0, fps[-1] if len(fps) else 0.0
    tpr = np.r_[0.0, tps / pos] if pos > 0 else np.full(len(tps) + 1, np.nan)
    fpr = np.r_[0.0, fps / neg] if neg > 0 else np.full(len(fps) + 1, np.nan)
    thresholds = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thresholds


def roc_auc_binary(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (Mann–Whitney with ties counted half); NaN if one class is absent."""
    t = np.asarray(y_true).ravel().astype(bool)
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc_ovr(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Macro one-vs-rest ROC AUC over classes present in ``y_true``. ``probs``: ``(N, K)``."""
    t = np.asarray(y_true).ravel()
    p = np.asarray(probs, dtype=np.float64)
    aucs = [roc_auc_binary(t == k, p[:, k]) for k in range(p.shape[1])]
    finite = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(finite)) if finite else float("nan")
