"""The MRNet protocol (Bien et al., PLoS Medicine 2018): one model per plane × task, logistic-regression fusion of
the three planes per task, and AUC / accuracy / sensitivity / specificity / ROC per task — clean and, optionally,
under an FGSM attack on the fused model.

The fusion is fitted on the ``val`` split (train exams held out from the plane models) and evaluated on ``test``
(MRNet's official ``valid`` set). The attack perturbs the three series of an exam at once along the sign of the
fused loss's gradient (an L∞ FGSM on the fused model).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from medrobust.config import ExperimentConfig
from medrobust.data.base import ArrayDataset
from medrobust.data.mrnet import mrnet
from medrobust.errors import ConfigError, DataError
from medrobust.evaluation.outputs import RocCurve, binary_metrics, threat_outputs
from medrobust.evaluation.threats import ThreatSpec
from medrobust.runtime import model_device
from medrobust.studies.fusion import LogisticFusion
from medrobust.training.checkpoint import CHECKPOINT
from medrobust.training.loop import resolve_device
from medrobust.training.runs import METRICS, Run, load_run, train_run

Log = Callable[[str], None]
SPLIT_OPTIONS = {  # the mrnet options that define the train/val split (and subset), with the loader's defaults
    k: v.default for k, v in inspect.signature(mrnet).parameters.items() if k in ("val_fraction", "seed", "n")
}


@dataclass
class PlaneModel:
    """A trained plane model with its val and test splits."""

    plane: str
    run: Run
    val: ArrayDataset
    test: ArrayDataset


def plane_config(base: ExperimentConfig, root: str, plane: str, task: str) -> ExperimentConfig:
    """``base`` (model, optimiser, epochs, loader options) on MRNet ``plane`` / ``task``."""
    options = {**base.data.options, "plane": plane, "task": task}
    return base.with_values({"data.name": "mrnet", "data.root": root, "data.options": options, "train.progress": False})


def train_or_load(config: ExperimentConfig, folder: Path, log: Log) -> Run:
    """A finished run in ``folder`` is reused, an interrupted one resumed, otherwise trained."""
    if (folder / METRICS).exists():
        log(f"  reusing {folder}")
        run = load_run(folder)
        want, got = config.data.options, run.config.data.options
        if run.config.data.name != "mrnet" or any(got.get(k) != want[k] for k in ("plane", "task")):
            raise ConfigError(
                f"{folder} holds a run of {run.config.data.name} {got.get('plane')}/{got.get('task')}, not mrnet "
                f"{want['plane']}/{want['task']}; move it away or choose another --out"
            )
        diff = [k for k in SPLIT_OPTIONS if got.get(k, SPLIT_OPTIONS[k]) != want.get(k, SPLIT_OPTIONS[k])]
        if diff:  # another val split: the fusion could be fitted on exams this plane model trained on
            saved = ", ".join(f"{k}={got.get(k, SPLIT_OPTIONS[k])!r}" for k in diff)
            raise ConfigError(
                f"{folder} was trained with another data split ({saved}); every plane needs the same "
                "val_fraction, seed and n: move it away or choose another --out"
            )
        return run
    log(f"  training {folder.name} ({config.model.name}, {config.train.epochs} epochs) → {folder}")
    run, _ = train_run(config, folder, resume=(folder / CHECKPOINT).exists())
    run.model.eval()
    return run


def _aligned(models: Sequence[PlaneModel], split: str) -> tuple[list[Tensor], Tensor]:
    """Per-plane row indices of the exams present in every plane (same order), and their labels."""
    sets = [getattr(m, split) for m in models]
    ids = [d.extras["case_id"].tolist() for d in sets]
    common = sorted(set(ids[0]).intersection(*ids[1:]))
    if not common:
        raise DataError(f"mrnet: no exam of the {split} split has a volume in every plane")
    where = [{c: i for i, c in enumerate(x)} for x in ids]
    rows = [torch.tensor([w[c] for c in common]) for w in where]
    return rows, sets[0].targets[rows[0]]


def _plane_logits(
    models: Sequence[PlaneModel], split: str, rows: list[Tensor], batch_size: int, device: torch.device
) -> Tensor:
    """``(N, P)`` logits of each plane model on the aligned exams."""
    cols = []
    for m, r in zip(models, rows):
        (out,), _ = threat_outputs(m.run.model, getattr(m, split), m.run.task, ThreatSpec.clean(),
                                   batch_size=batch_size, device=device)  # fmt: skip
        cols.append(out.reshape(-1)[r])
    return torch.stack(cols, dim=1)


def fgsm_on_fused(
    models: Sequence[PlaneModel], fusion: LogisticFusion, rows: list[Tensor], y: Tensor, eps: float, batch_size: int
) -> Tensor:
    """``(N, P)`` plane logits after an L∞ FGSM at ``eps`` on the fused model (all planes of an exam perturbed).

    The fused loss is ``BCE(Σ_p w_p·σ(l_p) + b, y)``; its input gradient for plane ``p`` is
    ``(σ(z) − y)·w_p·σ'(l_p)·∇l_p``, whose sign is ``sign(1 − 2y)·sign(w_p)·sign(∇l_p)``. The attack uses that
    exact sign, computed from the logits, so saturated sigmoids cannot mask the gradient.

    Shape:
        rows: per plane ``(N,)`` indices into its test split; y: ``(N,)``.
    """
    dev = model_device(models[0].run.model)
    direction = torch.sign(fusion.coef.detach()).to(dev)
    out = []
    for start in range(0, len(y), batch_size):
        xs = [m.test.batch(r[start : start + batch_size])[0].to(dev).requires_grad_(True) for m, r in zip(models, rows)]
        logits = torch.stack([m.run.model(x).reshape(-1) for m, x in zip(models, xs)], dim=1)
        away = 1 - 2 * y[start : start + batch_size].float().to(dev)
        grads = torch.autograd.grad((away[:, None] * logits * direction).sum(), xs)
        with torch.no_grad():
            adv = [(x + eps * g.sign()).clamp(0, 1) for x, g in zip(xs, grads)]
            out.append(torch.stack([m.run.model(a).reshape(-1) for m, a in zip(models, adv)], dim=1).cpu())
    return torch.cat(out)


def _metrics(logits: Tensor, y: Tensor, run: Run) -> dict[str, Any]:
    return binary_metrics(run.task, logits.detach().reshape(-1, 1), y)


def fuse_task(
    models: Sequence[PlaneModel],
    *,
    eps: float | None = None,
    c: float = 1.0,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Fit the fusion on ``val``, evaluate planes and fused model on ``test`` (and under FGSM at ``eps``).

    Returns a dict with ``fusion`` (coefficients), ``clean`` and optionally ``fgsm`` (``{name: metrics}`` for each
    plane and ``"fused"``), and ``curves`` (``{"clean": [...], "fgsm": [...]}`` ROC inputs).
    """
    device = torch.device(device)
    for m in models:
        m.run.model.to(device).eval()
    val_rows, val_y = _aligned(models, "val")
    fusion = LogisticFusion.fit(torch.sigmoid(_plane_logits(models, "val", val_rows, batch_size, device)), val_y, c=c)
    rows, y = _aligned(models, "test")
    result: dict[str, Any] = {
        "fusion": {**fusion.to_dict(), "planes": [m.plane for m in models], "fitted_on": f"val (n = {len(val_y)})"},
        "n_test": len(y),
        "curves": {},
    }
    conditions = {"clean": _plane_logits(models, "test", rows, batch_size, device)}
    if eps is not None:
        conditions["fgsm"] = fgsm_on_fused(models, fusion, rows, y, eps, batch_size)
        result["eps"] = eps
    for name, logits in conditions.items():  # metrics and ROC from logits: probabilities saturate in float32
        fused = fusion.decision_function(torch.sigmoid(logits.double())).float()
        per = {m.plane: _metrics(logits[:, i], y, m.run) for i, m in enumerate(models)}
        result[name] = {**per, "fused": _metrics(fused, y, models[0].run)}
        curves: list[RocCurve] = [(m.plane, y, logits[:, i]) for i, m in enumerate(models)]
        result["curves"][name] = [*curves, ("fused", y, fused.detach())]
    return result


def run_protocol(
    base: ExperimentConfig,
    root: str,
    out: str | Path,
    *,
    planes: Sequence[str],
    tasks: Sequence[str],
    eps: float | None = None,
    c: float = 1.0,
    batch_size: int = 16,
    log: Log = print,
) -> dict[str, dict[str, Any]]:
    """Train (or reuse) ``out/runs/TASK-PLANE`` for every plane × task, then fuse and evaluate each task."""
    out = Path(out)
    models: dict[str, list[PlaneModel]] = {t: [] for t in tasks}
    for plane in planes:  # plane-major: the three tasks share one plane's volumes (loader cache)
        for task in tasks:
            run = train_or_load(plane_config(base, root, plane, task), out / "runs" / f"{task}-{plane}", log)
            models[task].append(PlaneModel(plane, run, run.dataset("val"), run.dataset("test")))
    results = {}
    for task in tasks:
        log(f"  fusing {task}: {', '.join(planes)}" + (f"; FGSM ε = {eps:g} on the fused model" if eps else ""))
        device = resolve_device(base.train.device)
        results[task] = fuse_task(models[task], eps=eps, c=c, batch_size=batch_size, device=device)
    return results
