"""Training methods, each a :class:`TrainingMethod` registered by name."""

from __future__ import annotations

from medrobust.methods.adaptive_margin import IMA, BoundarySearch, MarginAttack, MarginSchedule
from medrobust.methods.amat import amat
from medrobust.methods.augmix import AugMix
from medrobust.methods.base import Batch, EpochContext, StepContext, StepOutput, TrainingMethod
from medrobust.methods.erm import Standard
from medrobust.methods.fast_at import FastAdversarialTraining
from medrobust.methods.fgsm_aug import FGSMAugmentation
from medrobust.methods.pgd_at import PGDAdversarialTraining
from medrobust.methods.robust_augmix import RobustAugMix
from medrobust.methods.trades import TRADES
from medrobust.registry import Registry

METHODS: Registry[TrainingMethod] = Registry("method")
METHODS.register("standard", help="ERM: task loss on clean data (baseline)")(Standard)
METHODS.register("pgd_at", help="SAT: PGD adversarial training at a fixed eps (Madry et al. 2018)")(
    PGDAdversarialTraining
)
METHODS.register("fgsm_aug", help="fine-tune with a retrain percentage of FGSM examples (Yan et al., MRNet)")(
    FGSMAugmentation
)
METHODS.register("trades", help="TRADES: CE + beta*KL(clean || PGD example) (Zhang et al. 2019)")(TRADES)
METHODS.register("fast_at", help="fast adversarial training: FGSM from a random start (Wong et al. 2020)")(
    FastAdversarialTraining
)
METHODS.register("ima", help="IMA: per-sample increasing-margin adversarial training (Ma & Liang 2023)")(
    IMA.from_options
)
METHODS.register("amat", help="AMAT: IMA with a task/loss-defined margin (segmentation, landmarks, detection)")(amat)
METHODS.register("augmix", help="AugMix + Jensen-Shannon consistency, lambda 12 (Hendrycks et al. 2020)")(AugMix)
METHODS.register(
    "robust_augmix", help="RobustAugMix: JS over clean, AugMix and PGD views (Martinez-Martinez & Brown 2022)"
)(RobustAugMix)

__all__ = [
    "IMA",
    "METHODS",
    "TRADES",
    "AugMix",
    "Batch",
    "BoundarySearch",
    "EpochContext",
    "FGSMAugmentation",
    "FastAdversarialTraining",
    "MarginAttack",
    "MarginSchedule",
    "PGDAdversarialTraining",
    "RobustAugMix",
    "Standard",
    "StepContext",
    "StepOutput",
    "TrainingMethod",
    "amat",
]
