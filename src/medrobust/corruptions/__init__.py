"""Noise corruptions and their registry (``medrobust list corruptions``).

A corruption is a frozen config called as ``corruption(x, level, generator=...)`` on a batch in [0, 1]; see
:mod:`medrobust.corruptions.noise` for what ``level`` means for each.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from medrobust.corruptions.noise import GaussianNoise, SaltPepperNoise, SpeckleNoise, UniformNoise
from medrobust.registry import Registry


class Corruption(Protocol):
    """``corruption(x, level, generator=...) -> x_noisy``, shape ``(N, *)`` in [0, 1]."""

    def __call__(self, x: Tensor, level: float, *, generator: torch.Generator | None = None) -> Tensor: ...


CORRUPTIONS: Registry[Corruption] = Registry("corruption")
CORRUPTIONS.register("uniform", help="additive uniform white noise (IMA); level = L2 norm per sample")(UniformNoise)
CORRUPTIONS.register("gaussian", help="additive Gaussian noise; level = variance")(GaussianNoise)
CORRUPTIONS.register("salt_pepper", help="salt & pepper; level = fraction of flipped elements")(SaltPepperNoise)
CORRUPTIONS.register("speckle", help="multiplicative Gaussian noise x + x·n; level = variance")(SpeckleNoise)

__all__ = [
    "CORRUPTIONS",
    "Corruption",
    "GaussianNoise",
    "SaltPepperNoise",
    "SpeckleNoise",
    "UniformNoise",
]
