"""What one run contributes to an HTML report, gathered from its run folder and ``results.json``.

A source is a run folder (holding ``results.json``) or a results file; the run folder of a results file is the
folder it lies in when that holds a checkpoint, else the ``run`` recorded in its config. Without a checkpoint
the report still has every results-based section, but no gallery, per-class metrics or ROC curves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medrobust.config import load_config
from medrobust.errors import DataError
from medrobust.evaluation.results import Results
from medrobust.reporting.gallery import ModelViews, model_views
from medrobust.training.checkpoint import CHECKPOINT

RESULTS = "results.json"
HISTORY = "history.jsonl"
MAX_MARGIN_FIGURES = 6


@dataclass
class RunReport:
    """Everything the report shows of one run.

    Attributes:
        name: the run's name (its folder's name).
        results: the evaluation.
        results_path: where the results were read.
        folder: the run folder (``None`` when not found).
        config_text: the run's ``config.yaml`` (empty when absent).
        train_seed: the training seed from the config (``None`` when unknown).
        history: the per-epoch records of ``history.jsonl``.
        margin_figures: ``(file name, PNG bytes)`` of the IMA/AMAT ``margins_epoch*.png`` shown (at most 6,
            spread over the epochs, the last always included).
        views: the model-derived parts (``None`` without a checkpoint or when disabled).
    """

    name: str
    results: Results
    results_path: Path
    folder: Path | None = None
    config_text: str = ""
    train_seed: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    margin_figures: list[tuple[str, bytes]] = field(default_factory=list)
    views: ModelViews | None = None


def resolve(source: str | Path) -> tuple[Path, Path | None]:
    """``(results file, run folder or None)`` of a run folder or a results file; raises :class:`DataError`."""
    p = Path(source)
    if p.is_dir():
        if not (p / RESULTS).is_file():
            raise DataError(f"{p} holds no {RESULTS}; run 'medrobust evaluate {p}' first")
        return p / RESULTS, p
    if not p.is_file():
        raise DataError(f"{p} not found; pass a run folder (with {RESULTS}) or a results file")
    if (p.parent / CHECKPOINT).is_file():
        return p, p.parent
    run = Results.load(p).config.get("run")
    return p, Path(run) if run and (Path(run) / CHECKPOINT).is_file() else None


def collect(
    source: str | Path, *, gallery: bool = True, examples: int = 4, device: str = "cpu", max_n: int = 256
) -> RunReport:
    """Read a source (see the module docstring) into a :class:`RunReport`; with ``gallery`` and a checkpoint,
    compute the model-derived parts (:func:`~medrobust.reporting.gallery.model_views`; ROC curves under attack on at
    most ``max_n`` samples)."""
    results_path, folder = resolve(source)
    results = Results.load(results_path)
    name = folder.name if folder is not None else results_path.parent.name or results_path.stem
    report = RunReport(name, results, results_path, folder)
    if folder is None:
        return report
    config = folder / "config.yaml"
    if config.is_file():
        report.config_text = config.read_text(encoding="utf-8")
        report.train_seed = load_config(config).train.seed
    report.history = read_history(folder / HISTORY)
    report.margin_figures = _margin_figures(folder)
    if gallery and (folder / CHECKPOINT).is_file():
        from medrobust.training.runs import load_run

        report.views = model_views(load_run(folder, device=device), results, examples=examples, max_n=max_n,
                                   seed=results.seed)  # fmt: skip
    return report


def read_history(path: Path) -> list[dict[str, Any]]:
    """The records of a ``history.jsonl`` (empty when absent); raises :class:`DataError` on a corrupt line."""
    if not path.is_file():
        return []
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise DataError(f"{path} line {i} is not JSON; the history is corrupt (retrain or delete it)") from None
    return records


def _margin_figures(folder: Path) -> list[tuple[str, bytes]]:
    files = sorted(folder.glob("margins_epoch*.png"))
    if len(files) > MAX_MARGIN_FIGURES:
        step = (len(files) - 1) / (MAX_MARGIN_FIGURES - 1)
        files = [files[round(i * step)] for i in range(MAX_MARGIN_FIGURES)]
    return [(f.name, f.read_bytes()) for f in files]
