"""Calibration metrics: RMS calibration error (debiased and plug-in), ECE, reliability bins, entropy.

All functions take probabilities as returned by ``task.probabilities`` and labels as stored in the dataset:

- single-label tasks: ``probs (N, K)`` rows summing to 1 (a one-logit binary model gives ``[1 - σ, σ]``) and
  integer ``labels (N,)``;
- multi-label tasks: ``probs (N, L)`` independent label probabilities and 0/1 ``labels (N, L)``; each label is
  a binary problem with probabilities ``[1 - p, p]``.

Binning rules (stated once, used everywhere):

- **equal-width** (Guo et al. 2017; torchmetrics): edges ``0, 1/B, …, 1``; bin ``b`` holds ``edges[b] ≤ c <
  edges[b+1]``, the last bin also holds ``c = 1``.
- **equal-mass** (Kumar et al. 2019, ``calibration`` library ``get_equal_bins``): sort the ``n`` values, split
  them into ``min(B, n)`` consecutive chunks (``numpy.array_split``); each upper edge is the midpoint between a
  chunk's last and the next chunk's first value, the final edge is 1; duplicate edges are merged. A value equal
  to an edge goes to the lower bin (``searchsorted(side="left")``).

Reference: Kumar, Liang & Ma, "Verified Uncertainty Calibration", NeurIPS 2019.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Binning = Literal["equal_mass", "equal_width"]
FloatArray = NDArray[np.float64]


def equal_width_edges(num_bins: int) -> FloatArray:
    """Edges ``linspace(0, 1, num_bins + 1)`` (``num_bins + 1`` values)."""
    return np.linspace(0.0, 1.0, num_bins + 1)


def equal_mass_edges(values: ArrayLike, num_bins: int) -> FloatArray:
    """Upper bin edges holding about equally many of ``values`` (Kumar et al.); the last edge is 1.

    Returns the *upper* edges only (as Kumar's library does): bin ``b`` holds ``edges[b-1] < v ≤ edges[b]``.
    """
    s = np.sort(np.asarray(values, dtype=np.float64).ravel())
    chunks = np.array_split(s, min(num_bins, len(s)))
    mids = [(a[-1] + b[0]) / 2.0 for a, b in itertools.pairwise(chunks)]
    return np.unique(np.asarray([*mids, 1.0]))


def bin_index(confidence: ArrayLike, num_bins: int, binning: Binning) -> NDArray[np.int64]:
    """Bin of each confidence under ``binning`` (see the module docstring for the rules). Shape: ``(n,)``."""
    c = np.asarray(confidence, dtype=np.float64).ravel()
    if binning == "equal_width":
        idx = np.searchsorted(equal_width_edges(num_bins), c, side="right") - 1
        return np.clip(idx, 0, num_bins - 1).astype(np.int64)
    if binning == "equal_mass":
        return np.searchsorted(equal_mass_edges(c, num_bins), c, side="left").astype(np.int64)
    raise ValueError(f"unknown binning {binning!r}; use 'equal_mass' or 'equal_width'")


def binned_calibration_error(
    confidence: ArrayLike,
    outcome: ArrayLike,
    *,
    num_bins: int = 15,
    binning: Binning = "equal_mass",
    p: int = 2,
    debias: bool = False,
) -> float:
    """Binned L``p`` calibration error of one binary problem.

    Plug-in: ``(Σ_b (n_b/n)·|mean(c)_b − mean(o)_b|^p)^(1/p)``. With ``debias`` (``p = 2`` only; Kumar et al.'s
    ``unbiased_l2_ce``) each bin's squared gap is reduced by ``ȳ_b(1 − ȳ_b)/(n_b − 1)`` (bins with fewer than
    2 samples contribute 0); the weighted sum is clamped at 0 before the square root.

    Shape:
        ``confidence (n,)`` in [0, 1]; ``outcome (n,)`` 0/1.
    """
    if debias and p != 2:
        raise ValueError("the debiased estimator is defined for p = 2 only")
    c = np.asarray(confidence, dtype=np.float64).ravel()
    o = np.asarray(outcome, dtype=np.float64).ravel()
    if c.size == 0:
        return float("nan")
    idx = bin_index(c, num_bins, binning)
    total = 0.0
    for b in np.unique(idx):
        m = idx == b
        n_b = int(m.sum())
        err = abs(c[m].mean() - o[m].mean()) ** p
        if debias:
            y_bar = o[m].mean()
            err = err - y_bar * (1.0 - y_bar) / (n_b - 1) if n_b >= 2 else 0.0
        total += n_b / c.size * err
    return float(max(total, 0.0) ** (1.0 / p))


def _columns(probs: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Per-class probability and 0/1 outcome columns ``(n, K)`` (multi-label: ``[1-p, p]`` for each label)."""
    pr = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if y.ndim == 2:
        p = pr.ravel()
        t = y.ravel().astype(np.float64)
        return np.stack([1 - p, p], axis=1), np.stack([1 - t, t], axis=1)
    return pr, np.eye(pr.shape[1])[y.astype(np.int64).ravel()]


def _top_label(probs: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Top-label confidence and correctness ``(n,)`` (argmax; first index wins ties)."""
    cols, onehot = _columns(probs, labels)
    pred = cols.argmax(axis=1)
    return cols.max(axis=1), onehot[np.arange(len(pred)), pred]


def rmsce(probs: ArrayLike, labels: ArrayLike, *, num_bins: int = 15, debias: bool = True) -> float:
    """Marginal RMS calibration error (default: Kumar et al.'s debiased "verified calibration" estimator).

    For each class ``k`` the binary problem ``(probs[:, k], labels == k)`` is binned into ``num_bins``
    equal-mass bins of its own; the per-class squared error (debiased and clamped at 0 if ``debias``) is
    averaged over classes and the square root taken. ``debias=False`` gives the marginal plug-in RMSCE.

    Shape:
        ``probs (N, K)``; ``labels (N,)`` class indices, or ``(N, L)`` 0/1 for multi-label.
    """
    cols, onehot = _columns(probs, labels)
    sq = [
        binned_calibration_error(cols[:, k], onehot[:, k], num_bins=num_bins, debias=debias) ** 2
        for k in range(cols.shape[1])
    ]
    return float(np.sqrt(np.mean(sq)))


def top_label_rmsce(
    probs: ArrayLike, labels: ArrayLike, *, num_bins: int = 15, binning: Binning = "equal_mass"
) -> float:
    """Plug-in top-label RMS calibration error: confidence = max probability, outcome = argmax is right.

    Equal-mass bins by default: METHODS.md's test vector (0.311420581 on its 30-sample example) is this
    estimator with 15 equal-mass bins; pass ``binning="equal_width"`` for the Guo et al. style bins.

    Shape:
        ``probs (N, K)``; ``labels (N,)`` (or ``(N, L)`` for multi-label, one binary problem per label).
    """
    conf, correct = _top_label(probs, labels)
    return binned_calibration_error(conf, correct, num_bins=num_bins, binning=binning, p=2)


def ece(probs: ArrayLike, labels: ArrayLike, *, num_bins: int = 15, binning: Binning = "equal_width") -> float:
    """Expected calibration error (Guo et al. 2017): top-label L1 gap, 15 equal-width bins by default.

    Shape:
        ``probs (N, K)``; ``labels (N,)`` (or ``(N, L)`` for multi-label).
    """
    conf, correct = _top_label(probs, labels)
    return binned_calibration_error(conf, correct, num_bins=num_bins, binning=binning, p=1)


@dataclass(frozen=True)
class ReliabilityBins:
    """Top-label reliability diagram data over equal-width bins.

    Attributes:
        edges: ``(B + 1,)`` bin edges.
        confidence: ``(B,)`` mean confidence per bin (NaN where empty).
        accuracy: ``(B,)`` accuracy per bin (NaN where empty).
        count: ``(B,)`` samples per bin.
    """

    edges: FloatArray
    confidence: FloatArray
    accuracy: FloatArray
    count: NDArray[np.int64]


def reliability_bins(probs: ArrayLike, labels: ArrayLike, *, num_bins: int = 15) -> ReliabilityBins:
    """Per-bin mean confidence, accuracy and count of the top label (equal-width bins).

    Shape:
        ``probs (N, K)``; ``labels (N,)`` (or ``(N, L)`` for multi-label).
    """
    conf, correct = _top_label(probs, labels)
    idx = bin_index(conf, num_bins, "equal_width")
    count = np.bincount(idx, minlength=num_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=num_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=num_bins) / count
    return ReliabilityBins(equal_width_edges(num_bins), mean_conf, acc, count)


def mean_entropy(probs: ArrayLike, *, multilabel: bool = False) -> float:
    """Mean predictive entropy ``mean_i −Σ_k p_ik ln p_ik`` in nats (``0 ln 0 = 0``).

    Multi-label: the sum over labels of each label's binary entropy.

    Shape:
        ``probs (N, K)``.
    """
    p = np.asarray(probs, dtype=np.float64)
    if multilabel:
        p = np.stack([p, 1 - p], axis=-1).reshape(len(p), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(h.mean())
