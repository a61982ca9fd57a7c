"""AMAT: Adaptive-Margin Adversarial Training (Ma & Liang, arXiv 2206.01736; METHODS §1.6) — a preset of the
:class:`~medrobust.methods.adaptive_margin.IMA` class, not a second implementation.

The defaults follow the official code, SarielMa/amat_conf at d0aa94e (``nnUNet/nnunet/AMAT/
RobustDNN_AMAT_claregseg.py``, ``nnUNet/nnunet/training/network_training/nnUNetTrainerV2.py``,
``landmark_detection/train_AMAT_2zscore.py``, ``yolov5/train_AMAT.py``).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from medrobust.methods.adaptive_margin import IMA

AMAT_DEFAULTS: dict[str, Any] = {
    "delta": 0.1,  # ours; official δ in z-score units: MSD D4 2.5, D5 10 (run_AMAT_training.py L294, L273),
    # landmarks E_max/10 (train_AMAT_2zscore.py L168); recipes/msd-*-amat.yaml convert them
    "e_max": math.inf,
    "alpha": None,  # 4 (run_AMAT_training.py L223), 5 for landmarks (train_AMAT_2zscore.py L172)
    "stop": "final",  # the final PGD point, no bisection (RobustDNN_AMAT_claregseg.py L419-436)
    "adv_mean": "adversarial",  # loss3 = Σ_A L / |A| (RobustDNN_AMAT_claregseg.py L445)
    "adv_samples": "correct",  # A = every clean-correct sample (model_Xn_advc_p=0: run_AMAT_training.py L234, L437-440)
    "clean_predicate": "any",  # clean predicate Dice ≥ 0, always true (nnUNetTrainerV2.py L330-337)
    "start_radius": "lagged",  # start radius min(max(E − δ, δ), E) (nnUNetTrainerV2.py L450, RobustDNN_PGD.py L235-244)
    "refine_floor": None,  # by task: E_new floored at δ for detection (yolov5/train_AMAT.py L706), else at 0
}
LEGACY_OPTIONS: dict[str, Any] = {
    "alpha": 4.0,
    "adv_samples": "flipped",
    "clean_predicate": "strict",
    "start_radius": "margin",
}
"""medrobust's AMAT before issue 12: ``amat(**LEGACY_OPTIONS, ...)``."""


def amat(**options: Any) -> IMA:
    """AMAT: :class:`IMA` with AMAT's defaults; ``options`` as for :meth:`IMA.from_options`.

    The margin predicate is the task's (Dice ≥ τ for segmentation, error ≤ τ for landmarks) or the loss-defined
    margin "loss ≤ τ" (``predicate="loss"``, ``tau`` given, or derived from a clean run where runs are
    assembled); it decides only the flips, hence the margin updates (official thresholds: MSD Heart / Hippocampus
    / Prostate Dice ≥ 0.911 / 0.807 / 0.861, nnUNetTrainerV2.py L347-360; landmarks ``de ≤ 0.02623``,
    ``rx, ry ≤ 0.02774``, train_AMAT_2zscore.py L63-67). The adversarial term is the mean over **every** sample's
    final PGD point at its own radius (``adv_samples="correct"`` with the permissive ``clean_predicate="any"``;
    ``clean_tau`` sets a loose clean threshold of its own instead); the random start has radius
    ``min(max(E − δ, δ), E)``; α = 5 for landmarks and detection and 4 otherwise; ``e_max`` defaults to ∞;
    ``only_grow=True`` is the landmark setting. Detection (YOLOv5 on BCCD in the paper, yolov5/train_AMAT.py) adds
    one rule, ``refine_floor="delta"`` (the default for a detection task): a refined margin never falls below δ;
    its adversarial term is over every sample as above (L245-249), and its published δ is 2.5 with ``E_max`` 15.
    The default δ = 0.1 is ours; the official segmentation runs use 2.5 (Hippocampus) and 10 (Prostate) z-score
    units (``recipes/msd-*-amat.yaml`` hold them in [0, 1] units). The behaviour of medrobust before issue 12
    is ``amat(**LEGACY_OPTIONS)`` (adversarial term over the clean-correct flipped samples, the strict τ on the
    clean output too, start at radius ``E``, α = 4).

    Examples:
        >>> m = amat(tau=0.9)
        >>> m.name, m.search.stop, m.schedule.e_max, m.adv_mean, m.adv_samples, m.clean_predicate
        ('amat', 'final', inf, 'adversarial', 'correct', 'any')
        >>> m.schedule.refine_floor is None  # "delta" for detection, "zero" otherwise, fixed at setup
        True
        >>> amat(**LEGACY_OPTIONS).adv_samples
        'flipped'
    """
    return IMA.from_options(**{**AMAT_DEFAULTS, **options, "name": "amat"})


def _amat_signature() -> inspect.Signature:
    """:meth:`IMA.from_options`'s signature with AMAT's defaults (option checks and ``list methods`` read it)."""
    sig = inspect.signature(IMA.from_options)
    params = [
        p.replace(default=AMAT_DEFAULTS.get(name, p.default)) for name, p in sig.parameters.items() if name != "name"
    ]
    return sig.replace(parameters=params)


amat.__signature__ = _amat_signature()  # type: ignore[attr-defined]
