"""Evaluate a trained run folder: its model, task and dataset split under a threat grid → :class:`Results`.

Example:
    >>> from medrobust.evaluation import ThreatSpec
    >>> from medrobust.evaluation.orchestrate import evaluate_run
    >>> from medrobust.training.runs import load_run
    >>> run = load_run("runs/std")  # doctest: +SKIP
    >>> threats = [ThreatSpec.attack("pgd", norm="l2", eps=[0, 0.25, 0.5], steps=20)]
    >>> results = evaluate_run(run, threats, n=200, out="runs/std/results.json")  # doctest: +SKIP
    >>> results.summary["clean_accuracy"]  # doctest: +SKIP
    0.9325
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from medrobust.evaluation.checks import RobustnessCheckWarning
from medrobust.evaluation.results import Results
from medrobust.evaluation.runner import evaluate
from medrobust.evaluation.threats import ThreatSpec
from medrobust.training.loop import resolve_device
from medrobust.training.runs import Run

Log = Callable[[str], None]


def evaluate_run(
    run: Run,
    threats: Sequence[ThreatSpec],
    *,
    split: str = "test",
    n: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    warn: bool = True,
    log: Log | None = None,
    resume: str | os.PathLike[str] | None = None,
    max_memory: int | None = None,
) -> Results:
    """Evaluate ``run``'s model on its dataset's ``split`` under ``threats`` (see :func:`evaluate`).

    Args:
        run: a loaded run (:func:`medrobust.training.runs.load_run`).
        threats: the grid; a clean threat is always evaluated first.
        split: ``"train"``, ``"val"`` or ``"test"``.
        n: evaluate a seeded random subset of ``n`` samples.
        batch_size: evaluation batch size.
        seed: seeds every random draw.
        device: ``"auto"``, ``"cpu"``, ``"cuda[:N]"`` or a device; ``None`` keeps the model's.
        out: when given, the results file to write; the metrics table and figures go beside it
            (:func:`medrobust.reporting.outputs.write_results`).
        progress: show a progress bar.
        warn: warn about failed sanity checks (they are in ``results.checks`` either way).
        log: receives one line naming what is evaluated.
        resume: a partial-results file to continue an interrupted evaluation from (and to keep while running).
        max_memory: a memory budget in bytes (:mod:`medrobust.evaluation.memory`); None: no budget.

    Returns:
        :class:`Results` with ``model``, ``method`` and ``config["run"]`` filled in from the run.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    data = run.dataset(split)
    if log is not None:
        log(f"evaluating {run.name} on {data.info.name} ({split}, n = {min(n or len(data), len(data))})")
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore", RobustnessCheckWarning)
        results = evaluate(run.model, data, run.task, threats, seed=seed, batch_size=batch_size, device=dev, n=n,
                           progress=progress, resume=resume, max_memory=max_memory)  # fmt: skip
    results.model, results.method = run.config.model.name, run.config.method.name
    results.config["run"] = str(run.path)
    if out is not None:
        from medrobust.reporting.outputs import write_results  # matplotlib: import on use

        write_results(results, Path(out), run.name)
    return results
