"""The side-by-side comparison of several runs (the shape of the papers' tables).

One row per run: clean accuracy, accuracy at each ε of the first attack, its AUC-robustness, the mean accuracy
over each noise's levels, clean RMSCE and entropy, training seconds per epoch, and a status column that marks a
run whose clean accuracy is at or below the majority-class rate as a failure (such a model scores well on
AUC-robustness while having learnt nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from medrobust.reporting.dense import dense_comparison_table
from medrobust.reporting.entries import Entry, status
from medrobust.reporting.tables import Table, format_level


def comparison_table(entries: Sequence[Entry]) -> Table:
    """The comparison :class:`Table` (see the module docstring); dense-task runs get the Dice / MRE table."""
    if entries[0].results.capabilities.dense:
        return dense_comparison_table(entries)
    first = entries[0].results.summary["threats"]
    attack = next((t for t in first if t["kind"] == "attack"), None)
    noises = [t for t in first if t["kind"] == "noise"]
    header: list[str] = ["run", "method", "clean acc"]
    kinds: list[str] = ["text", "text", "value"]
    if attack is not None:
        tag = f"{attack['threat']} {attack['norm']}"
        eps = [v for v in attack["levels"] if v > 0]
        header += [f"acc @ {format_level(v)}" for v in eps] + [f"{tag} AUC-rob"]
        kinds += ["value"] * (len(eps) + 1)
    header += [f"{t['threat']} mean acc" for t in noises] + ["RMSCE", "entropy", "s/epoch", "status"]
    kinds += ["value"] * (len(noises) + 3) + ["text"]
    rows = [tuple(_row(e, attack, noises)) for e in entries]
    return Table(tuple(header), tuple(rows), tuple(kinds), "comparison")  # type: ignore[arg-type]


def _row(e: Entry, attack: dict[str, Any] | None, noises: list[dict[str, Any]]) -> list[Any]:
    s = e.results.summary
    by_key = {(t["threat"], t["norm"]): t for t in s.get("threats", [])}
    row: list[Any] = [e.name, e.method, s.get("clean_accuracy")]
    if attack is not None:
        mine = by_key.get((attack["threat"], attack["norm"]), {})
        curve = dict(zip(mine.get("levels", []), mine.get("accuracy", [])))
        row += [curve.get(v, math.nan) for v in attack["levels"] if v > 0] + [mine.get("auc_robustness")]
    row += [by_key.get((t["threat"], t["norm"]), {}).get("mean_accuracy") for t in noises]
    clean = s.get("clean", {})
    row += [clean.get("rmsce"), clean.get("entropy"), e.epoch_seconds, status(e.results)]
    return row
