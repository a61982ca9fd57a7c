"""Threat specifications and the parsing of their command-line spellings.

A :class:`ThreatSpec` names one axis of the evaluation grid: the clean data, an attack (``pgd``, ``fgsm``,
``ifgsm``, the white-noise attack ``noise``) at one norm over a list of ε, or a noise corruption (``gaussian``,
``speckle``, ``salt_pepper``, ``uniform``) over a list of levels. Levels accept fractions: ``"0,1/255,8/255"``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from medrobust.errors import ConfigError

ThreatKind = Literal["clean", "attack", "noise"]
NORMS = ("linf", "l2")
LOSSES = ("ce", "margin")


@dataclass(frozen=True)
class ThreatSpec:
    """One threat of the evaluation grid.

    Attributes:
        kind: ``"clean"``, ``"attack"`` (a registered attack) or ``"noise"`` (a registered corruption).
        name: registry name (``"clean"`` for the clean threat).
        levels: increasing ε (attacks) or noise levels (variance, amount, …); ``(0.0,)`` for clean.
        norm: ``"linf"`` or ``"l2"`` for attacks, ``None`` otherwise.
        options: extra factory options of the attack or corruption (e.g. ``steps``, ``loss``, ``restarts``).
        label: the name used in result rows; defaults to ``name`` (set it to tell two PGD variants apart).
    """

    kind: ThreatKind
    name: str = "clean"
    levels: tuple[float, ...] = (0.0,)
    norm: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))
        if self.kind not in ("clean", "attack", "noise"):
            raise ConfigError(f"unknown threat kind {self.kind!r}; use clean, attack or noise")
        if not self.levels:
            raise ConfigError(f"threat {self.threat!r} has no levels; give at least one value")
        if any(v < 0 for v in self.levels) or any(b <= a for a, b in itertools.pairwise(self.levels)):
            raise ConfigError(f"levels of {self.threat!r} must be non-negative and increasing, got {list(self.levels)}")
        if self.kind == "attack" and self.norm not in NORMS:
            raise ConfigError(f"attack {self.name!r} needs norm 'linf' or 'l2', got {self.norm!r}")
        if self.kind != "attack" and self.norm is not None:
            raise ConfigError(f"only attacks have a norm; {self.kind} threat {self.name!r} got {self.norm!r}")

    @property
    def threat(self) -> str:
        """The label written in result rows."""
        return self.label or self.name

    @classmethod
    def clean(cls) -> ThreatSpec:
        """The unperturbed data."""
        return cls("clean")

    @classmethod
    def attack(cls, name: str, *, norm: str, eps: Iterable[float], label: str = "", **options: Any) -> ThreatSpec:
        """An attack over a list of ε (``options`` go to the attack factory, e.g. ``steps=20, loss="ce"``)."""
        return cls("attack", name, tuple(eps), norm, dict(options), label)

    @classmethod
    def noise(cls, name: str, levels: Iterable[float], *, label: str = "", **options: Any) -> ThreatSpec:
        """A noise corruption over a list of levels."""
        return cls("noise", name, tuple(levels), None, dict(options), label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["levels"] = list(self.levels)
        d["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return d


def parse_number(text: str) -> float:
    """A non-negative number, decimal or fraction: ``"0.1"``, ``"1e-3"``, ``"8/255"``."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):  # OverflowError: beyond float's range, e.g. 1e999
        raise ConfigError(f"cannot read {text!r} as a number; write e.g. 0.03, 1e-3 or 8/255") from None
    if value < 0:
        raise ConfigError(f"level {text!r} is negative; levels must be >= 0")
    return value


def parse_levels(text: str) -> tuple[float, ...]:
    """Comma-separated levels, sorted and de-duplicated: ``"0,1/255,8/255"`` → ``(0.0, 0.0039…, 0.0313…)``."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"no levels in {text!r}; give a comma-separated list like 0,1/255,8/255")
    return tuple(sorted({parse_number(p) for p in parts}))


def parse_noise(text: str) -> ThreatSpec:
    """``"NAME:LEVELS"`` (e.g. ``"gaussian:0.01,0.1"``) → a noise :class:`ThreatSpec`."""
    name, sep, levels = text.partition(":")
    if not sep or not name.strip():
        raise ConfigError(f"bad noise spec {text!r}; write NAME:LEVELS, e.g. gaussian:0.01,0.1")
    return ThreatSpec.noise(name.strip(), parse_levels(levels))


def parse_loss(text: str) -> str | tuple[str, ...]:
    """``"ce"``, ``"margin"`` or ``"ce,margin"`` (worst case over both losses)."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [n for n in names if n not in LOSSES]
    if not names or bad:
        raise ConfigError(f"unknown attack loss {text!r}; use ce, margin or ce,margin")
    return names[0] if len(names) == 1 else names
