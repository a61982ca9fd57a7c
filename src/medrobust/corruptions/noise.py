"""Random noise corruptions with scikit-image ``random_noise`` semantics, batched and generator-driven.

Each corruption is a frozen config called as ``corruption(x, level, generator=...)`` on a batch in [0, 1] and
returns a new batch clipped to [0, 1]; ``level = 0`` returns ``x`` unchanged. Gaussian, speckle and salt &
pepper follow ``skimage.util.random_noise`` (van der Walt et al. 2014), the noise models of the COVID-19 chest
X-ray robustness study (Martinez-Martinez & Brown 2022); uniform white noise is IMA's (Ma & Liang 2023).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from medrobust.errors import ConfigError
from medrobust.geometry import check_generator, check_images, uniform_noise


def _check(x: Tensor, level: float, generator: torch.Generator | None, *, at_most: float | None = None) -> None:
    check_images(x)
    check_generator(generator, x)
    if not (0 <= level < float("inf")):
        raise ConfigError(f"noise level must be a finite number >= 0; got {level}")
    if at_most is not None and level > at_most:
        raise ConfigError(f"noise level must be <= {at_most}; got {level}")


@dataclass(frozen=True)
class UniformNoise:
    """Additive uniform white noise; ``level`` is its L2 norm per sample (or its L∞ bound with ``norm="linf"``).

    Non-negative ``U[0, 1)`` by default as in IMA (Ma & Liang 2023); ``symmetric=True`` draws ``U[−1, 1)``.
    """

    norm: Literal["l2", "linf"] = "l2"
    symmetric: bool = False

    def __post_init__(self) -> None:
        if self.norm not in ("l2", "linf"):
            raise ConfigError(f"unknown norm {self.norm!r}; use 'l2' or 'linf'")

    def __call__(self, x: Tensor, level: float, *, generator: torch.Generator | None = None) -> Tensor:
        """Add noise of size ``level`` to every sample of ``x`` ``(N, *)`` and clip to [0, 1]."""
        _check(x, level, generator)
        size = torch.full((x.shape[0],), float(level), device=x.device, dtype=x.dtype)
        return (x + uniform_noise(x, size, self.norm, symmetric=self.symmetric, generator=generator)).clamp_(0, 1)


@dataclass(frozen=True)
class GaussianNoise:
    """``x + N(mean, level)``: ``level`` is the variance (skimage ``mode="gaussian"``, ``var=level``)."""

    mean: float = 0.0

    def __call__(self, x: Tensor, level: float, *, generator: torch.Generator | None = None) -> Tensor:
        """Add Gaussian noise of variance ``level`` to ``x`` ``(N, *)`` and clip to [0, 1]."""
        return (x + _normal(x, level, self.mean, generator)).clamp_(0, 1)


@dataclass(frozen=True)
class SpeckleNoise:
    """``x + x·N(mean, level)``: multiplicative noise, ``level`` is the variance (skimage ``mode="speckle"``)."""

    mean: float = 0.0

    def __call__(self, x: Tensor, level: float, *, generator: torch.Generator | None = None) -> Tensor:
        """Add speckle noise of variance ``level`` to ``x`` ``(N, *)`` and clip to [0, 1]."""
        return (x + x * _normal(x, level, self.mean, generator)).clamp_(0, 1)


@dataclass(frozen=True)
class SaltPepperNoise:
    """Each element flipped with probability ``level`` (skimage's ``amount``): to 1 with probability
    ``salt_vs_pepper``, else to 0 (skimage ``mode="s&p"``)."""

    salt_vs_pepper: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.salt_vs_pepper <= 1:
            raise ConfigError(f"salt_vs_pepper must be in [0, 1]; got {self.salt_vs_pepper}")

    def __call__(self, x: Tensor, level: float, *, generator: torch.Generator | None = None) -> Tensor:
        """Flip a fraction ``level`` of the elements of ``x`` ``(N, *)`` to 0 or 1."""
        _check(x, level, generator, at_most=1.0)
        flipped = torch.rand(x.shape, generator=generator, device=x.device) < level
        salted = torch.rand(x.shape, generator=generator, device=x.device) < self.salt_vs_pepper
        return torch.where(flipped, salted.to(x.dtype), x)


def _normal(x: Tensor, variance: float, mean: float, generator: torch.Generator | None) -> Tensor:
    """Checked draw of ``N(mean, variance)`` noise shaped like ``x``."""
    _check(x, variance, generator)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return noise * variance**0.5 + mean
