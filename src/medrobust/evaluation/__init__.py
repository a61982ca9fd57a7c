"""Robustness evaluation: the threat grid, attack sweeps, sanity checks and the results schema.

Example:
    >>> from medrobust.evaluation import ThreatSpec, evaluate
    >>> threats = [ThreatSpec.attack("pgd", norm="linf", eps=[0, 1 / 255, 8 / 255], steps=20),
    ...            ThreatSpec.noise("gaussian", [0.01, 0.1])]
    >>> results = evaluate(model, dataset, task, threats, seed=0)  # doctest: +SKIP
    >>> results.save("results.json")  # doctest: +SKIP
"""

from medrobust.evaluation.checks import RobustnessCheckWarning
from medrobust.evaluation.results import SCHEMA, Results
from medrobust.evaluation.runner import evaluate, metric_rows
from medrobust.evaluation.sweep import build_attack, pgd_sweep
from medrobust.evaluation.threats import ThreatSpec, parse_levels, parse_loss, parse_noise, parse_number

__all__ = [
    "SCHEMA",
    "Results",
    "RobustnessCheckWarning",
    "ThreatSpec",
    "build_attack",
    "evaluate",
    "metric_rows",
    "parse_levels",
    "parse_loss",
    "parse_noise",
    "parse_number",
    "pgd_sweep",
]
