"""Adversarial attacks, boundary bisection and margin estimation (``medrobust list attacks``).

Every attack is a frozen config called as ``attack(model, x, y, task=..., eps=..., generator=...)`` and
returns an :class:`AttackResult`; ``ATTACKS.create("pgd", norm="l2", steps=100)`` builds one by name.
"""

from medrobust.attacks.apgd import APGD
from medrobust.attacks.autoattack import AutoAttack
from medrobust.attacks.base import ATTACKS, Attack, AttackResult
from medrobust.attacks.boundary import Boundary, bisect_boundary
from medrobust.attacks.fgsm import FGSM
from medrobust.attacks.margin import estimate_margins
from medrobust.attacks.noise_attack import WhiteNoise
from medrobust.attacks.pgd import PGD, ifgsm
from medrobust.attacks.square import Square

__all__ = [
    "APGD",
    "ATTACKS",
    "FGSM",
    "PGD",
    "Attack",
    "AttackResult",
    "AutoAttack",
    "Boundary",
    "Square",
    "WhiteNoise",
    "bisect_boundary",
    "estimate_margins",
    "ifgsm",
]
