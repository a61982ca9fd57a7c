"""Helpers shared by the training methods: option validation (one-line :class:`ConfigError`) and clean outputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from medrobust.errors import ConfigError


def choice(method: str, option: str, value: str, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{method}: unknown {option} {value!r}; use one of {', '.join(map(repr, choices))}")


def positive(method: str, option: str, value: float, *, allow_zero: bool = False, allow_inf: bool = False) -> None:
    """Raise unless ``value`` is a number > 0 (``≥ 0`` with ``allow_zero``), finite unless ``allow_inf``."""
    ok = isinstance(value, (int, float)) and not math.isnan(value) and (value >= 0 if allow_zero else value > 0)
    if not ok or (math.isinf(value) and not allow_inf):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{method}: {option} must be a finite number {bound}; got {value!r}")


def fraction(method: str, option: str, value: float) -> None:
    """Raise unless ``0 ≤ value ≤ 1``."""
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{method}: {option} must lie in [0, 1]; got {value!r}")
