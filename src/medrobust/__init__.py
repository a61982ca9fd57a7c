"""medrobust: train medical-image networks that stay correct under adversarial attacks and noise, and measure
that robustness honestly.

The curated API: the attacks (:class:`PGD`, :class:`APGD`, :class:`Square`, :class:`AutoAttack`, :class:`FGSM`,
the :data:`ATTACKS` registry), evaluation (:func:`evaluate`, :func:`evaluate_run`, :func:`compare`,
:class:`ThreatSpec`, :class:`Results`), runs (:func:`train_run`, :func:`load_run`,
:func:`load_model`), data (:func:`medrobust.data.load`) and the registries of datasets, models, methods and
corruptions. Every tensor is float in [0, 1] of shape ``(N, C, *spatial)``; normalisation lives inside the model.

Examples:
    A model whose logit is the first pixel minus 0.5, attacked by L∞ PGD: samples closer than ε to the boundary
    are broken, the others are not.

    >>> import torch
    >>> from torch import nn
    >>> import medrobust
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    >>> _ = model[1].weight.data.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    >>> _ = model[1].bias.data.fill_(-0.5)
    >>> x = torch.tensor([0.52, 0.6, 0.9]).view(3, 1, 1, 1).repeat(1, 1, 2, 2)
    >>> task = medrobust.ClassificationTask("binary", 2)
    >>> y = torch.ones(3, dtype=torch.long)
    >>> result = medrobust.PGD(norm="linf", steps=10)(model, x, y, task=task, eps=0.05)
    >>> result.fooled.tolist()
    [True, False, False]
"""

from medrobust.attacks import APGD, ATTACKS, FGSM, PGD, AttackResult, AutoAttack, Square
from medrobust.corruptions import CORRUPTIONS
from medrobust.data import DATASETS
from medrobust.errors import ConfigError, DataError, MedrobustError, UnknownNameError
from medrobust.evaluation import Results, ThreatSpec, evaluate
from medrobust.evaluation.compare import Comparison, compare
from medrobust.evaluation.orchestrate import evaluate_run
from medrobust.methods import METHODS
from medrobust.models import MODELS
from medrobust.tasks import ClassificationTask, LandmarkTask, SegmentationTask, Task
from medrobust.training.runs import Run, load_model, load_run, train_run

__version__ = "0.1.0"

__all__ = [
    "APGD",
    "ATTACKS",
    "CORRUPTIONS",
    "DATASETS",
    "FGSM",
    "METHODS",
    "MODELS",
    "PGD",
    "AttackResult",
    "AutoAttack",
    "ClassificationTask",
    "Comparison",
    "ConfigError",
    "DataError",
    "LandmarkTask",
    "MedrobustError",
    "Results",
    "Run",
    "SegmentationTask",
    "Square",
    "Task",
    "ThreatSpec",
    "UnknownNameError",
    "__version__",
    "compare",
    "evaluate",
    "evaluate_run",
    "load_model",
    "load_run",
    "train_run",
]
