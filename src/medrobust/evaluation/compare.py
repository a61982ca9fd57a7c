"""Several runs under one threat grid: each run's results (reused from its ``results.json`` when they were computed
with the same grid after its last checkpoint, else evaluated and saved there), one side-by-side table, its files
and curves, and optionally the robust-training study's tables (``layout="study"``).

Example:
    >>> from medrobust.evaluation import ThreatSpec
    >>> from medrobust.evaluation.compare import compare
    >>> threats = [ThreatSpec.attack("pgd", norm="l2", eps=[0, 0.25, 0.5], steps=20)]
    >>> result = compare(["runs/std", "runs/sat"], threats, "runs/cmp", n=200)  # doctest: +SKIP
    >>> print(result.table.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from medrobust.distributed import world
from medrobust.errors import ConfigError, DataError
from medrobust.evaluation.orchestrate import evaluate_run
from medrobust.evaluation.results import Results
from medrobust.evaluation.threats import ThreatSpec
from medrobust.reporting.comparison import comparison_table
from medrobust.reporting.entries import Entry
from medrobust.reporting.tables import Table
from medrobust.training.checkpoint import atomic_write_text
from medrobust.training.loop import resolve_device
from medrobust.training.runs import Run, load_run

Log = Callable[[str], None]
Layout = Literal["table", "study"]


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`.

    Attributes:
        entries: one per run, in the given order.
        table: the side-by-side comparison table.
        written: the comparison files (table .md/.csv/.tex, ``comparison.json``, curve PNGs).
        study_tables: with ``layout="study"``: the measured accuracy and calibration tables, then the published ones.
        study_written: with ``layout="study"``: their files and the reliability diagrams.
    """

    entries: list[Entry]
    table: Table
    written: list[Path]
    study_tables: tuple[Table, ...] = ()
    study_written: list[Path] = field(default_factory=list)


def compare(
    runs: Sequence[Run | str | os.PathLike[str]],
    threats: Sequence[ThreatSpec],
    out: str | os.PathLike[str],
    *,
    split: str = "test",
    n: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "auto",
    reuse: bool = True,
    layout: Layout = "table",
    progress: bool = True,
    log: Log | None = None,
    max_memory: int | None = None,
) -> Comparison:
    """Evaluate (or reuse) each run under ``threats`` and write the comparison into folder ``out``.

    Args:
        runs: loaded runs or run folders (loaded onto ``device``).
        threats: the grid shared by every run.
        out: folder for ``comparison.{md,csv,tex,json}``, the curve PNGs and (study layout) the study files.
        split, n, batch_size, seed: as in :func:`~medrobust.evaluation.orchestrate.evaluate_run`.
        device: where to evaluate (``"auto"``: CUDA when available).
        reuse: reuse a run's ``results.json`` computed with the same grid after its last checkpoint.
        layout: ``"study"`` adds the robust-training study's tables and reliability diagrams.
        progress: show progress bars.
        log: receives a line per run (evaluating / reusing).
        max_memory: a memory budget in bytes for each evaluation (:mod:`medrobust.evaluation.memory`).

    Returns:
        :class:`Comparison`; each evaluated run's results are also saved as its ``results.json``.
    """
    paths = [Path(r.path if isinstance(r, Run) else r).resolve() for r in runs]
    if len(set(paths)) != len(paths):
        raise ConfigError("the same run folder is given twice")
    dev = resolve_device(device) if isinstance(device, str) else device
    main = world().main
    entries = []
    for r in runs:
        run = r if isinstance(r, Run) else load_run(Path(r), device=str(dev))
        results = reusable(run, threats, split=split, n=n, seed=seed) if reuse else None
        if results is None:
            results = evaluate_run(run, threats, split=split, n=n, batch_size=batch_size, seed=seed, device=dev,
                                   progress=progress, warn=False, log=log, max_memory=max_memory,
                                   resume=None if world().parallel else run.path / "results.json.partial")  # fmt: skip
            if main:  # under torchrun every rank evaluates its share; rank 0 writes
                results.save(run.path / "results.json")
        elif log is not None:
            log(f"reusing {run.path / 'results.json'}")
        entries.append(Entry(run.name, run.config.method.name, results, epoch_seconds(run)))
    folder = Path(out)
    table = comparison_table(entries)
    comparison = Comparison(entries, table, write_comparison(entries, table, folder) if main else [])
    if layout == "study":
        from medrobust.reporting.study import study_tables, write_study

        written = write_study(entries, folder) if main else []
        return Comparison(entries, table, comparison.written, study_tables(entries), written)
    return comparison


def epoch_seconds(run: Run) -> float:
    """Mean training seconds per epoch from the run's history (NaN when not recorded)."""
    seconds = [r["train_seconds"] for r in run.history if "train_seconds" in r]
    return sum(seconds) / len(seconds) if seconds else math.nan


def reusable(run: Run, threats: Sequence[ThreatSpec], *, split: str, n: int | None, seed: int) -> Results | None:
    """The run's ``results.json`` if computed after its last checkpoint with exactly this grid, else None."""
    path = run.path / "results.json"
    checkpoint = run.path / "checkpoint.pt"
    if not path.exists() or (checkpoint.exists() and path.stat().st_mtime < checkpoint.stat().st_mtime):
        return None
    try:
        old = Results.load(path)
    except DataError:
        return None
    want = _normal([s.to_dict() for s in [ThreatSpec.clean(), *threats]])
    same = (
        _normal(old.config.get("threats")) == want
        and old.config.get("subset") == n
        and old.seed == seed
        and old.split == split
    )
    return old if same else None


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value))


def write_comparison(entries: Sequence[Entry], table: Table, out: Path) -> list[Path]:
    """Save ``table`` (.md/.csv/.tex), a JSON of the runs' summaries and one curve plot per threat (dense tasks:
    also their metric curves) in ``out``; returns the paths."""
    from medrobust.reporting.dense import dense_plots
    from medrobust.reporting.plots import robustness_curves  # matplotlib: import on use

    out.mkdir(parents=True, exist_ok=True)
    written = table.save(out / "comparison")
    summary = [{"run": e.name, "method": e.method, "epoch_seconds": e.epoch_seconds, "summary": e.results.summary,
                "checks": e.results.checks} for e in entries]  # fmt: skip
    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=1, default=str, allow_nan=True))
    written.append(out / "comparison.json")
    runs = [(e.name, e.results) for e in entries]
    for spec in entries[0].results.summary["threats"]:
        tag = "_".join(p for p in (spec["threat"], spec["norm"]) if p)
        written.append(robustness_curves(runs, out / f"robustness_{tag}.png", threat=spec["threat"], norm=spec["norm"]))
    written += dense_plots(entries, out)  # Dice (segmentation), MRE and SDR (landmarks) vs ε
    return written
