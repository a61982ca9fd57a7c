"""The two tables of Martinez-Martinez & Nabavi's COVID-19 chest X-ray study, as views of compared runs.

- :func:`accuracy_table` (their Table I): clean accuracy, mean adversarial accuracy over the ε list of the first
  attack, and the mean accuracy over the levels of Gaussian, salt-and-pepper and speckle noise, in percent.
- :func:`calibration_table` (their Table II): clean RMSCE in percent (Kumar et al.'s debiased estimator, the
  reference they cite) and mean predictive entropy in nats.
- :func:`study_tables`: both, beside the published ones; :func:`write_study` saves them (.md/.csv/.tex) and draws
  one reliability diagram per run on clean data and one under attack.

Published numbers (ResNet-18, 41 epochs; METHODS §1.8) are in :data:`PUBLISHED_ACCURACY` and
:data:`PUBLISHED_CALIBRATION`. A run whose clean accuracy is at or below the majority-class rate is flagged in
the status column: mean accuracies over levels reward a constant classifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medrobust.reporting.entries import Entry, status
from medrobust.reporting.tables import Table, format_level

NOISES = (("gaussian", "Gaussian"), ("salt_pepper", "S&P"), ("speckle", "Speckle"))
PUBLISHED_ACCURACY = (
    ("Standard", 95.80, 22.24, 72.78, 72.00, 86.51),
    ("Robust", 95.96, 89.83, 82.91, 61.98, 95.91),
    ("AugMix", 94.25, 12.41, 21.27, 26.07, 44.35),
    ("RobustAugMix", 96.27, 82.10, 83.56, 69.75, 94.86),
)
PUBLISHED_CALIBRATION = (
    ("Standard", 7.14, 2.96),
    ("Robust", 5.61, 2.81),
    ("AugMix", 6.11, 4.47),
    ("RobustAugMix", 2.32, 4.09),
)
SOURCE = "Martinez-Martinez & Nabavi, COVID-19 chest X-ray, ResNet-18"


def _percent(v: Any) -> float:
    return 100 * float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan


def _attack(entry: Entry) -> dict[str, Any] | None:
    return next((t for t in entry.results.summary.get("threats", []) if t["kind"] == "attack"), None)


def _noise_mean(entry: Entry, name: str) -> float:
    threats: list[dict[str, Any]] = entry.results.summary.get("threats", [])
    match = [t for t in threats if t["kind"] == "noise" and t["name"] == name]
    return _percent(match[0].get("mean_accuracy")) if match else math.nan


def accuracy_table(entries: Sequence[Entry]) -> Table:
    """Table I: one row per run; accuracies in percent (see the module docstring)."""
    first = _attack(entries[0]) if entries else None
    adv = "Adversarial"
    if first is not None:
        levels = [v for v in first["levels"] if v > 0]
        if levels:
            adv += f" ({first['threat']} {first['norm']} {format_level(levels[0])}…{format_level(levels[-1])})"
    header = ("run", "method", "Clean", adv, *(label for _, label in NOISES), "status")
    rows = []
    for e in entries:
        attack = _attack(e)
        rows.append((e.name, e.method, _percent(e.results.summary.get("clean_accuracy")),
                     _percent(attack.get("mean_accuracy")) if attack else math.nan,
                     *(_noise_mean(e, name) for name, _ in NOISES), status(e.results)))  # fmt: skip
    kinds = ("text", "text", *["fixed2"] * (2 + len(NOISES)), "text")
    return Table(header, tuple(rows), kinds, "robustness: accuracy in % (mean over the levels)")  # type: ignore[arg-type]


def calibration_table(entries: Sequence[Entry]) -> Table:
    """Table II: clean RMSCE (%) and mean entropy (nats) per run."""
    rows = []
    for e in entries:
        clean = e.results.summary.get("clean", {})
        rows.append((e.name, e.method, _percent(clean.get("rmsce")), float(clean.get("entropy", math.nan))))
    header = ("run", "method", "RMSCE (%)", "entropy (nats)")
    return Table(header, tuple(rows), ("text", "text", "fixed2", "value"), "calibration (clean)")


def published_tables() -> tuple[Table, Table]:
    """The published Table I and Table II (percent; their entropy unit is not stated)."""
    acc = Table(("method", "Clean", "Adversarial", *(label for _, label in NOISES)), PUBLISHED_ACCURACY,
                ("text", *["fixed2"] * 5), f"published Table I ({SOURCE})")  # type: ignore[arg-type]  # fmt: skip
    cal = Table(("method", "RMSCE (%)", "entropy"), PUBLISHED_CALIBRATION, ("text", "fixed2", "fixed2"),
                f"published Table II ({SOURCE})")  # fmt: skip
    return acc, cal


def _value(entry: Entry, threat: str, metric: str, level: float, norm: str | None) -> float:
    try:
        return entry.results.value(threat, metric, level, norm)
    except KeyError:
        return math.nan


def attack_level_index(levels: Sequence[float]) -> int:
    """Index (into ``levels``) of the level drawn in the under-attack reliability diagram: the middle of the
    non-zero ε values (3/255 of 0, 1…5/255); 0 when every level is 0."""
    positive = [i for i, v in enumerate(levels) if v > 0]
    return positive[(len(positive) - 1) // 2] if positive else 0


def reliability_figures(entries: Sequence[Entry], out: Path) -> list[Path]:
    """One clean and one under-attack reliability diagram per run (PNG); returns the paths."""
    from medrobust.reporting.plots import reliability_diagram  # matplotlib: import on use

    written = []
    for e in entries:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in e.name)
        if e.results.summary.get("reliability"):
            rmsce = _percent(e.results.summary.get("clean", {}).get("rmsce"))
            written.append(reliability_diagram(e.results, out / f"reliability_{stem}_clean.png",
                                               title=f"{e.name}: clean, RMSCE {rmsce:.2f}%"))  # fmt: skip
        attack = _attack(e)
        if attack and attack.get("reliability"):
            k = attack_level_index(attack["levels"])
            level = format_level(attack["levels"][k])
            rmsce = _percent(_value(e, attack["threat"], "rmsce", attack["levels"][k], attack["norm"]))
            title = f"{e.name}: {attack['threat']} {attack['norm']} ε = {level}, RMSCE {rmsce:.2f}%"
            written.append(reliability_diagram(e.results, out / f"reliability_{stem}_{attack['threat']}.png",
                                               bins=attack["reliability"][k], title=title))  # fmt: skip
    return written


def study_tables(entries: Sequence[Entry]) -> tuple[Table, Table, Table, Table]:
    """The measured accuracy and calibration tables, then the published ones."""
    return (accuracy_table(entries), calibration_table(entries), *published_tables())


def write_study(entries: Sequence[Entry], out: Path) -> list[Path]:
    """Save the study tables (measured and published; see :func:`study_tables`) and the reliability diagrams."""
    acc, cal, pub_acc, pub_cal = study_tables(entries)
    out.mkdir(parents=True, exist_ok=True)
    written = acc.save(out / "study_accuracy") + cal.save(out / "study_calibration")
    written += pub_acc.save(out / "published_accuracy") + pub_cal.save(out / "published_calibration")
    return written + reliability_figures(entries, out)
