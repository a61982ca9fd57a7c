"""The FGSM-augmentation study (Yan et al., MRNet; METHODS §1.3): retrain percentage × ε grid from one run.

Each grid cell fine-tunes the trained run with ``fgsm_aug`` (each epoch, ``p`` % of the training set, drawn anew,
replaced by FGSM examples at ``ε`` with their true labels) and is compared with the run before fine-tuning, on clean
inputs and under FGSM at the same ``ε``: accuracy, ROC AUC, sensitivity, specificity and ROC curves. A *control*
cell fine-tunes for the same epochs with ``p = 0`` (plain continued training), so that the effect of FGSM examples
is not confused with that of more training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medrobust.config import ExperimentConfig, load_config
from medrobust.errors import ConfigError
from medrobust.evaluation.outputs import RocCurve, binary_metrics, threat_outputs
from medrobust.evaluation.threats import ThreatSpec
from medrobust.training.checkpoint import CHECKPOINT
from medrobust.training.loop import resolve_device
from medrobust.training.runs import CONFIG, METRICS, Run, load_run, train_run

Log = Callable[[str], None]
IGNORED_AT_P0 = ("eps", "mode", "norm")


@dataclass(frozen=True)
class Grid:
    """The study's settings.

    Attributes:
        percents: retrain percentages (Yan et al.: 1, 2, 6, 10).
        eps: FGSM radii, used for training and for the attack of the evaluation (Yan et al.: 1e-5 … 0.003).
        epochs: fine-tuning epochs per cell.
        lr: fine-tuning learning rate (None: the run's).
        mode: ``"replace"`` or ``"add"`` (see ``fgsm_aug``).
        norm: ``"linf"`` (the paper's) or ``"l2"``.
        control: also fine-tune with ``p = 0``.
    """

    percents: tuple[float, ...]
    eps: tuple[float, ...]
    epochs: int = 1
    lr: float | None = None
    mode: str = "replace"
    norm: str = "linf"
    control: bool = True

    def __post_init__(self) -> None:
        if not self.percents or not self.eps:
            raise ConfigError("fgsm-study needs at least one retrain percentage and one ε")
        if any(not 0 < p <= 100 for p in self.percents):
            raise ConfigError(f"retrain percentages must lie in (0, 100], got {list(self.percents)}")
        if any(not e > 0 for e in self.eps):
            raise ConfigError(f"ε values must be > 0, got {list(self.eps)}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        for name, values in (("retrain percentages", self.percents), ("ε values", self.eps)):
            if len(set(values)) < len(values):
                raise ConfigError(f"{name} repeat, got {list(values)}; give each value once")


def rounding_notes(percents: Sequence[float], train_size: int) -> list[str]:
    """Warnings about percentages that ``fgsm_aug``'s per-epoch rounding (``round(p·N/100)``) makes identical or 0."""
    counts: dict[int, list[float]] = {}
    for p in percents:
        counts.setdefault(round(p * train_size / 100), []).append(p)
    notes = []
    for k, ps in sorted(counts.items()):
        names = " and ".join(f"{p:g} %" for p in ps)
        if k == 0:
            notes.append(f"p = {names} of {train_size} training samples rounds to 0 FGSM examples: plain fine-tuning")
        elif len(ps) > 1:
            notes.append(f"p = {names} all give {k} FGSM example(s) per epoch of {train_size}: identical cells")
    return notes


def cell_name(percent: float, eps: float) -> str:
    """Run-folder name of a grid cell (``p0`` is the control)."""
    return f"p{percent:g}_eps{eps:g}" if percent > 0 else "control"


def cell_config(run: Run, grid: Grid, percent: float, eps: float) -> ExperimentConfig:
    """The run's config turned into an ``fgsm_aug`` fine-tuning from the run's weights."""
    values: dict[str, Any] = {
        "method.name": "fgsm_aug",
        "method.options": {"eps": eps, "percentage": percent, "mode": grid.mode, "norm": grid.norm},
        "train.init": str(run.path.resolve()),
        "train.epochs": grid.epochs,
        "train.progress": False,
    }
    if grid.lr is not None:
        values["optim.lr"] = grid.lr
    return run.config.with_values(values)


def fine_tune(run: Run, grid: Grid, percent: float, eps: float, out: Path, log: Log) -> Run:
    """Train one cell into ``out/cells/NAME`` (a finished cell of the same config is reused, a started one resumed)."""
    folder = out / "cells" / cell_name(percent, eps)
    config = cell_config(run, grid, percent, eps)
    if (folder / METRICS).exists():
        check_cell(folder, config)
        log(f"  reusing {folder}")
        return load_run(folder, device=str(resolve_device(run.config.train.device)))
    log(f"  fine-tuning {cell_name(percent, eps)} for {grid.epochs} epoch(s) → {folder}")
    trained, _ = train_run(config, folder, resume=(folder / CHECKPOINT).exists())
    return trained


def check_cell(folder: Path, config: ExperimentConfig) -> None:
    """Refuse a finished cell whose saved ``config.yaml`` differs from ``config`` (other --epochs, --lr, ….).

    ``train.progress`` and ``train.device`` do not change the result. At ``p = 0`` no FGSM example is made, so the
    control ignores ``eps``, ``mode`` and ``norm`` (its folder name does not encode ε).
    """
    old, new = load_config(folder / CONFIG).to_dict(), config.to_dict()
    for d in (old, new):
        for key in ("progress", "device"):
            d["train"].pop(key)
        if d["method"]["options"].get("percentage") == 0:
            d["method"]["options"] = {k: v for k, v in d["method"]["options"].items() if k not in IGNORED_AT_P0}
    diff = [f"{s}.{k}" for s, values in new.items() for k, v in values.items() if old[s].get(k) != v]
    if diff:
        raise ConfigError(
            f"{folder} was fine-tuned with another {', '.join(diff)} than this grid asks for; "
            "use a new --out or delete that cell folder"
        )


def evaluate(
    run: Run, data: Any, eps_list: Sequence[float], grid: Grid, batch_size: int, seed: int
) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
    """Outputs and targets of ``run``'s model (eval mode) at each ε (0 = clean); each ε is attacked by FGSM
    independently from the clean input."""
    eps = sorted({float(e) for e in eps_list if e > 0})
    specs = [ThreatSpec.clean()] if 0 in eps_list else []
    specs += [ThreatSpec.attack("fgsm", norm=grid.norm, eps=eps)] if eps else []
    out: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
    for spec in specs:
        outputs, targets = threat_outputs(run.model, data, run.task, spec, seed=seed, batch_size=batch_size)
        out.update({level: (o, targets) for level, o in zip(spec.levels, outputs)})
    return out


def run_study(
    run_path: str | Path,
    out: str | Path,
    grid: Grid,
    *,
    split: str = "test",
    batch_size: int = 64,
    seed: int = 0,
    log: Log = print,
) -> dict[str, Any]:
    """Run the whole grid; returns ``{"before": rows, "rows": rows, "curves": ...}`` (one row per cell and ε).

    Every row holds ``percent``, ``eps``, ``clean_*`` and ``fgsm_*`` metrics (accuracy, auc, sensitivity,
    specificity) after fine-tuning; the ``before`` rows hold the same for the original run at each ε.
    """
    out = Path(out)
    base = load_run(run_path)
    base.model.to(resolve_device(base.config.train.device))
    if getattr(base.task, "kind", None) != "binary":
        raise ConfigError(f"fgsm-study needs a binary classification run; {base.path} is {type(base.task).__name__}")
    data = base.dataset(split)
    levels = [0.0, *grid.eps]
    log(
        f"fgsm-study of {base.path} on {data.info.name} ({split}, n = {len(data)}): "
        f"p = {list(grid.percents)} %, ε = {list(grid.eps)}, {grid.epochs} epoch(s) per cell"
    )
    for note in rounding_notes(grid.percents, len(base.dataset("train"))):
        log(f"  note: {note}")
    before = evaluate(base, data, levels, grid, batch_size, seed)
    curves: dict[float, dict[str, list[RocCurve]]] = {e: {"clean": [], "fgsm": []} for e in grid.eps}
    for e in grid.eps:
        _add_curves(curves[e], "before", base, before[0.0], before[e])
    before_rows = [_row(base, "before", 0.0, e, before[0.0], before[e]) for e in grid.eps]
    rows = []
    cells = [(0.0, e) for e in grid.eps[:1]] if grid.control else []
    cells += [(p, e) for p in grid.percents for e in grid.eps]
    for p, e in cells:
        tuned = fine_tune(base, grid, p, e, out, log)
        eps_here = list(grid.eps) if p == 0 else [e]
        after = evaluate(tuned, data, [0.0, *eps_here], grid, batch_size, seed)
        for ee in eps_here:
            label = "control (p = 0)" if p == 0 else f"p = {p:g} %"
            _add_curves(curves[ee], label, tuned, after[0.0], after[ee])
            rows.append(_row(tuned, "after", p, ee, after[0.0], after[ee]))
    return {
        "run": str(base.path),
        "dataset": data.info.to_dict(),
        "split": split,
        "n": len(data),
        "grid": grid.__dict__,
        "before": before_rows,
        "rows": rows,
        "curves": curves,
    }


def _row(run: Run, stage: str, percent: float, eps: float, clean: Any, adv: Any) -> dict[str, Any]:
    c = binary_metrics(run.task, *clean)
    a = binary_metrics(run.task, *adv)
    return {
        "stage": stage,
        "percent": percent,
        "eps": eps,
        **{f"clean_{k}": v for k, v in c.items()},
        **{f"fgsm_{k}": v for k, v in a.items()},
    }


def _add_curves(target: dict[str, list[RocCurve]], label: str, run: Run, clean: Any, adv: Any) -> None:
    """ROC inputs: targets as the positive class and the log-odds of the positive class (no saturated ties)."""
    for key, (outputs, targets) in (("clean", clean), ("fgsm", adv)):
        target[key].append((label, (targets == run.task.positive_class).long(), run.task.log_odds(outputs).cpu()))
