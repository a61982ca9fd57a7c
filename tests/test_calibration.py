"""Calibration metrics against the METHODS.md test vectors, torchmetrics' documented example and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medrobust.metrics import calibration as cal

P1 = np.round(np.linspace(0.05, 0.95, 30), 6)
LABELS = np.array([0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1])
PROBS = np.stack([1 - P1, P1], axis=1)


def test_methods_vectors() -> None:
    assert cal.rmsce(PROBS, LABELS, debias=False) == pytest.approx(0.218578287, abs=1e-9)
    assert cal.top_label_rmsce(PROBS, LABELS) == pytest.approx(0.311420581, abs=1e-9)
    assert cal.rmsce(PROBS, LABELS) == 0.0


def test_torchmetrics_binary_example() -> None:
    preds, target = [0.25, 0.25, 0.55, 0.75, 0.75], [0, 0, 1, 1, 1]
    l1 = cal.binned_calibration_error(preds, target, num_bins=2, binning="equal_width", p=1)
    l2 = cal.binned_calibration_error(preds, target, num_bins=2, binning="equal_width", p=2)
    assert l1 == pytest.approx(0.2900, abs=5e-5)
    assert l2 == pytest.approx(0.2918, abs=5e-5)


def test_equal_width_edges_rule() -> None:
    idx = cal.bin_index([0.0, 0.5, 0.49, 1.0], 2, "equal_width")
    assert idx.tolist() == [0, 1, 0, 1]  # left-closed bins, 1.0 in the last bin


def test_equal_mass_bins_and_lower_edge_rule() -> None:
    values = np.arange(1, 11) / 10  # 0.1 .. 1.0
    edges = cal.equal_mass_edges(values, 5)
    assert edges == pytest.approx([0.25, 0.45, 0.65, 0.85, 1.0])
    assert np.bincount(cal.bin_index(values, 5, "equal_mass")).tolist() == [2, 2, 2, 2, 2]
    assert cal.bin_index([0.25], 5, "equal_mass").tolist() == [0]  # a value at an edge goes to the lower bin
    assert len(cal.equal_mass_edges([0.3, 0.7], 15)) == 2  # never more bins than values


def test_debiased_is_below_plugin_and_clamped() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], size=400)
    y = np.array([rng.choice(3, p=row) for row in p])  # perfectly calibrated by construction
    assert cal.rmsce(p, y) < cal.rmsce(p, y, debias=False)
    assert cal.rmsce(p, y) < 0.03
    y = np.arange(300) % 3
    wrong = np.eye(3)[(y + 1) % 3]  # confidently wrong: per class, a bin of 0s (half positive) and a bin of 1s
    assert cal.rmsce(wrong, y, debias=False) == pytest.approx(math.sqrt(0.5))
    assert cal.rmsce(wrong, y) == pytest.approx(math.sqrt(0.5 - 2 / 3 * 0.25 / 199))


def test_ece_against_manual_and_sklearn_reliability() -> None:
    sklearn_cal = pytest.importorskip("sklearn.calibration")
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 500)
    y = (rng.uniform(0, 1, 500) < p**2).astype(int)
    prob_true, prob_pred = sklearn_cal.calibration_curve(y, p, n_bins=15, strategy="uniform")
    idx = cal.bin_index(p, 15, "equal_width")
    ours_true = [y[idx == b].mean() for b in np.unique(idx)]
    ours_pred = [p[idx == b].mean() for b in np.unique(idx)]
    assert ours_true == pytest.approx(prob_true)
    assert ours_pred == pytest.approx(prob_pred)
    counts = np.bincount(idx, minlength=15)
    expected = sum(c / len(p) * abs(a - b) for c, a, b in zip(counts[counts > 0], ours_pred, ours_true))
    assert cal.binned_calibration_error(p, y, binning="equal_width", p=1) == pytest.approx(expected)


def test_top_label_ece_and_reliability_bins() -> None:
    probs = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75], [0.35, 0.65]])
    labels = np.array([0, 1, 1, 0])
    # confidences 0.95, 0.85, 0.75, 0.65 (samples 1 and 3 wrong), one bin each with 10 bins
    assert cal.ece(probs, labels, num_bins=10) == pytest.approx((0.05 + 0.85 + 0.25 + 0.65) / 4)
    bins = cal.reliability_bins(probs, labels, num_bins=10)
    assert bins.count.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert bins.accuracy[6:].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert bins.confidence[6:] == pytest.approx([0.65, 0.75, 0.85, 0.95])
    assert np.isnan(bins.accuracy[0])


def test_entropy_nats() -> None:
    assert cal.mean_entropy(np.full((5, 4), 0.25)) == pytest.approx(math.log(4))
    assert cal.mean_entropy(np.eye(3)) == 0.0
    assert cal.mean_entropy(np.array([[0.5, 0.5, 0.5]]), multilabel=True) == pytest.approx(3 * math.log(2))


def test_multilabel_is_per_label_binary() -> None:
    p = np.array([[0.9, 0.2], [0.1, 0.7], [0.8, 0.6]])
    y = np.array([[1, 0], [0, 1], [1, 0]])
    flat = p.ravel()
    binary = np.stack([1 - flat, flat], axis=1)
    assert cal.rmsce(p, y, debias=False) == pytest.approx(cal.rmsce(binary, y.ravel(), debias=False))
    assert cal.ece(p, y) == pytest.approx(cal.ece(binary, y.ravel()))
