"""Pure metric functions: classification, calibration, robustness curves, segmentation and landmarks.

Classification and calibration metrics take NumPy-like arrays and return floats; segmentation and landmark
metrics take tensors. Each is checked against scikit-learn or a published reference in the tests.

Examples:
    >>> from medrobust.metrics import accuracy, auc_robustness, roc_auc_binary
    >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    >>> roc_auc_binary([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> round(auc_robustness(1.0, [0.0, 0.5, 1.0], [1.0, 0.5, 0.0]), 3)
    0.5
"""

from medrobust.metrics.calibration import ReliabilityBins, ece, mean_entropy, reliability_bins, rmsce, top_label_rmsce
from medrobust.metrics.classification import (
    accuracy,
    balanced_accuracy,
    confusion,
    recall_per_class,
    roc_auc_binary,
    roc_auc_ovr,
    roc_curve,
    specificity_per_class,
)
from medrobust.metrics.landmark import landmark_metrics, mean_radial_error, radial_errors, success_detection_rate
from medrobust.metrics.robustness import auc_robustness, mean_adversarial_accuracy
from medrobust.metrics.segmentation import dice_per_class, dice_per_sample, soft_dice, soft_dice_per_class, total_dice

__all__ = [
    "ReliabilityBins",
    "accuracy",
    "auc_robustness",
    "balanced_accuracy",
    "confusion",
    "dice_per_class",
    "dice_per_sample",
    "ece",
    "landmark_metrics",
    "mean_adversarial_accuracy",
    "mean_entropy",
    "mean_radial_error",
    "radial_errors",
    "recall_per_class",
    "reliability_bins",
    "rmsce",
    "roc_auc_binary",
    "roc_auc_ovr",
    "roc_curve",
    "soft_dice",
    "soft_dice_per_class",
    "specificity_per_class",
    "success_detection_rate",
    "top_label_rmsce",
    "total_dice",
]
