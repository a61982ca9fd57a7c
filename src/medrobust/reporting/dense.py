"""Comparison table and curves of dense-task runs (segmentation: Dice; landmarks: MRE and SDR).

The shape of AMAT's figures (Ma & Liang, arXiv 2206.01736): one row per run with the clean metric, the metric at
each ε of the first attack, the AUC-robustness of the Dice (or SDR) vs ε curve (trapezoid over ``[0] + ε`` with the
clean value at 0, divided by the largest ε), the predicate rate's AUC ("accuracy": Dice ≥ τ or error ≤ τ),
training seconds per epoch and the status of the sanity checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medrobust.reporting.entries import Entry, status
from medrobust.reporting.tables import Table, format_level


def dense_comparison_table(entries: Sequence[Entry]) -> Table:
    """One row per run (see the module docstring); ε from the first run's first attack, metrics from its task's
    headline metrics (``dice``; ``mre`` and one SDR)."""
    first = entries[0].results.summary
    attack = next((t for t in first["threats"] if t["kind"] == "attack"), None)
    metrics = _headline(entries[0])
    eps = [v for v in attack["levels"] if v > 0] if attack is not None else []
    header: list[str] = ["run", "method"]
    for m in metrics:
        header += [f"clean {m}", *(f"{m} @ {format_level(v)}" for v in eps)]
        if attack is not None and not m.startswith("mre"):
            header.append(f"{m} AUC-rob")
    header += ["pred. AUC-rob"] if attack is not None else []
    header += ["s/epoch", "status"]
    rows = [(*_row(e, attack, metrics, eps), e.epoch_seconds, status(e.results)) for e in entries]
    kinds = ["text", "text"] + ["value"] * (len(header) - 3) + ["text"]
    return Table(tuple(header), tuple(rows), tuple(kinds), "dense comparison")  # type: ignore[arg-type]


def _headline(e: Entry) -> list[str]:
    """The run's headline metrics that its results hold (an SDR radius may be missing)."""
    clean = e.results.summary.get("clean", {})
    return [m for m in e.results.capabilities.headline_metrics if m in clean]


def _row(e: Entry, attack: dict[str, Any] | None, metrics: list[str], eps: list[float]) -> list[Any]:
    s = e.results.summary
    row: list[Any] = [e.name, e.method]
    mine: dict[str, Any] = {}
    if attack is not None:
        mine = next(
            (t for t in s.get("threats", []) if (t["threat"], t["norm"]) == (attack["threat"], attack["norm"])), {}
        )
    for m in metrics:
        curve = dict(zip(mine.get("levels", []), mine.get("curves", {}).get(m, [])))
        row += [s.get("clean", {}).get(m), *(curve.get(v, math.nan) for v in eps)]
        if attack is not None and not m.startswith("mre"):
            row.append(mine.get("metric_auc_robustness", {}).get(m))
    if attack is not None:
        row.append(mine.get("auc_robustness"))
    return row


def dense_plots(entries: Sequence[Entry], out: Path) -> list[Path]:
    """Metric-vs-ε curves (Dice; MRE and SDR) of every attack threat, one line per run; ``[]`` for classification."""
    from medrobust.reporting.plots import robustness_curves  # matplotlib: import on use

    first = entries[0].results.summary
    if not entries[0].results.capabilities.dense:
        return []
    runs = [(e.name, e.results) for e in entries]
    written = []
    for spec in first["threats"]:
        if spec["kind"] != "attack":
            continue
        for m in _headline(entries[0]):
            tag = "_".join(p for p in (m.replace("@", "at"), spec["threat"], spec["norm"]) if p)
            written.append(
                robustness_curves(runs, out / f"{tag}.png", threat=spec["threat"], norm=spec["norm"], metric=m)
            )
    return written
