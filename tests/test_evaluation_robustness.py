"""AUC-robustness and mean adversarial accuracy on hand-computed curves."""

from __future__ import annotations

import pytest

from medrobust.metrics.robustness import auc_robustness, mean_adversarial_accuracy


def test_auc_robustness_prepends_clean_point() -> None:
    # trapezoids over [0, 1, 2, 4]: (1+.8)/2*1 + (.8+.6)/2*1 + (.6+0)/2*2 = .9 + .7 + .6 = 2.2 → / 4
    assert auc_robustness(1.0, [1, 2, 4], [0.8, 0.6, 0.0]) == pytest.approx(0.55)


def test_auc_robustness_uses_grid_zero_when_present() -> None:
    assert auc_robustness(0.9, [0, 2], [1.0, 0.0]) == pytest.approx(0.5)  # the grid's value at 0 wins


def test_constant_classifier_scores_its_rate() -> None:
    assert auc_robustness(0.5, [1 / 255, 8 / 255], [0.5, 0.5]) == pytest.approx(0.5)
    assert mean_adversarial_accuracy([1 / 255, 8 / 255], [0.5, 0.5]) == pytest.approx(0.5)


def test_mean_adversarial_accuracy_skips_zero() -> None:
    assert mean_adversarial_accuracy([0, 1, 2, 3], [1.0, 0.9, 0.6, 0.3]) == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("levels", "accs"),
    [([], []), ([1, 2], [0.5]), ([2, 1], [0.5, 0.4]), ([-1, 1], [0.5, 0.4]), ([0], [1.0])],
)
def test_bad_curves_raise(levels: list[float], accs: list[float]) -> None:
    with pytest.raises(ValueError):
        auc_robustness(1.0, levels, accs)
    with pytest.raises(ValueError):
        mean_adversarial_accuracy(levels, accs)
