"""The threat-grid runner: clean data, attacks over ε lists and noise over levels → :class:`Results`.

Every metric of ``task.metrics`` (accuracy, balanced accuracy, AUC, sensitivity, specificity) plus the
calibration metrics (``rmsce``: Kumar et al.'s debiased marginal estimator; ``ece``; ``entropy`` in nats) is
computed under each threat and level. Robust accuracy counts every sample: a clean-misclassified sample stays
wrong under attack. Same seed, same numbers.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from medrobust.distributed import gather_objects, shard, world
from medrobust.errors import ConfigError, DataError
from medrobust.evaluation import attack_checks as A
from medrobust.evaluation import checks as C
from medrobust.evaluation import memory as M
from medrobust.evaluation.attack_checks import AttackAudit, breakdown_rows
from medrobust.evaluation.passes import AttackResume, spec_outputs
from medrobust.evaluation.results import Results, json_safe
from medrobust.evaluation.resume import Progress
from medrobust.evaluation.summary import summarize
from medrobust.evaluation.threats import ThreatSpec
from medrobust.metrics import calibration as cal
from medrobust.runtime import eval_mode, model_device, provenance
from medrobust.tasks.base import Capabilities, Task
from medrobust.tasks.records import task_record

Batch = tuple[Tensor, Tensor]


def evaluate(
    model: nn.Module,
    data: Any,
    task: Task,
    threats: Sequence[ThreatSpec],
    *,
    seed: int = 0,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    n: int | None = None,
    probe_n: int = 64,
    progress: bool = True,
    resume: str | os.PathLike[str] | None = None,
    max_memory: int | None = None,
) -> Results:
    """Evaluate ``model`` on ``data`` under every threat; see the module docstring.

    Args:
        model: maps inputs in [0, 1] to logits; moved to ``device`` and run in eval mode (flags restored).
        data: a dataset yielding ``(x, target, ...)`` (e.g. :class:`~medrobust.data.ArrayDataset`) or an
            iterable of such batches (a ``DataLoader``).
        task: loss, predicate and metrics (e.g. ``ClassificationTask``).
        threats: the grid; a clean threat is always evaluated first.
        seed: seeds every random draw (attack starts, noise); each threat gets its own derived generator.
        batch_size: batch size for datasets.
        device: where to run; defaults to the model's device.
        n: evaluate a seeded random subset of ``n`` samples (datasets only).
        probe_n: samples used by the sanity-check probes.
        progress: show a tqdm progress bar.
        resume: a partial-results file: an interrupted evaluation with the same settings continues from it and
            gives the rows of an uninterrupted one (:mod:`medrobust.evaluation.resume`); removed when done.
        max_memory: a budget in bytes for the model's activations, the weights and the batch's inputs: the model
            then sees chunks of samples that fit (:mod:`medrobust.evaluation.memory`); the batches stay the same.

    Returns:
        :class:`Results` with tidy rows, a summary and the sanity checks (failures are also warned).

    Under ``torchrun`` each rank evaluates a contiguous share of the batches and the outputs are gathered in
    dataset order before any row is computed; every random draw comes from a generator of (seed, threat, batch),
    so the rows equal a single-process run's (docs/distributed.md). Resumption is for one process only.
    """
    start = time.perf_counter()
    dev = torch.device(device) if device is not None else model_device(model)
    grid = _grid(threats)
    batches = _batches(data, batch_size, n, seed)  # gathered on the CPU when used, moved to ``dev`` one at a time
    check_finite_inputs(batches)
    targets = torch.cat([y for _, y in batches])
    mine = shard(torch.arange(len(batches))).tolist()  # this rank's batches (all of them in one process)
    passes = sum(len(s.levels) if s.kind == "noise" else 1 for s in grid)
    progress = progress and world().main
    key = {"grid": [s.to_dict() for s in grid], "seed": seed, "n": n, "batch_size": batch_size,
           "task": task_record(task), "samples": len(targets), "targets": float(targets.double().sum())}  # fmt: skip
    saved = Progress(None if world().parallel else resume, key)
    with eval_mode(model.to(dev)):
        memory = None if max_memory is None else M.plan(model, batches[0][0][:1].to(dev), batch_size, max_memory)
        net = model if memory is None else M.ChunkedModel(model, memory.chunk)
        with tqdm(total=passes * len(mine), desc="evaluate", disable=not progress or None, leave=False) as bar:
            out = _run_grid(net, task, grid, batches, mine, targets, seed, dev, bar, saved)
        checks = _checks(net, task, out, batches, targets, probe_n, dev, _generator(seed, -1, dev))
    saved.finish()
    C.warn_failed(checks)
    info = getattr(data, "info", None)
    return Results(
        rows=out.rows,
        summary=_with_attack_reliability(
            summarize(out.rows, grid, targets, out.clean_probs, Capabilities.of(task)), out.reliability
        ),
        checks=checks,
        n=len(targets),
        task=task_record(task),
        dataset=getattr(info, "name", ""),
        split=getattr(info, "split", ""),
        config={
            "threats": [s.to_dict() for s in grid],
            "batch_size": batch_size,
            "device": str(dev),
            "subset": n,
            **({"memory": memory.to_dict()} if memory is not None else {}),
        },
        versions=versions(),
        seed=seed,
        seconds=round(time.perf_counter() - start, 3),
    )


@dataclass
class _GridOutput:
    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: list[C.Curve] = field(default_factory=list)
    clean_outputs: Tensor | None = None
    clean_probs: Tensor | None = None
    reliability: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # attack label → bins per ε
    audits: dict[str, AttackAudit] = field(default_factory=dict)  # attack label → adversarial-point statistics
    nonfinite: list[str] = field(default_factory=list)  # "threat@level" where the model returned NaN or Inf


def _grid(threats: Sequence[ThreatSpec]) -> list[ThreatSpec]:
    grid = [ThreatSpec.clean(), *(s for s in threats if s.kind != "clean")]
    keys = [(s.threat, s.norm) for s in grid]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ConfigError(f"threat {dup[0]!r} (norm {dup[1]}) appears twice; give one of them a distinct label")
    return grid


def _run_grid(
    model: nn.Module, task: Task, grid: list[ThreatSpec], batches: Sequence[Batch], mine: list[int],
    targets: Tensor, seed: int, dev: torch.device, bar: Any, saved: Progress,
) -> _GridOutput:  # fmt: skip
    res = _GridOutput()
    local = batches.pick(mine) if isinstance(batches, SplitBatches) else [batches[b] for b in mine]
    for i, spec in enumerate(grid):
        found = saved.audit(i)
        audit = None if spec.kind != "attack" else (
            AttackAudit.from_dict(found) if found else AttackAudit(str(spec.norm), spec.levels))  # fmt: skip
        outputs = saved.done(i)
        if outputs is None:
            resume = AttackResume(saved, i) if spec.kind == "attack" else None
            gens = [_generator(seed, i, dev, batch=b) for b in mine]
            outputs = spec_outputs(model, task, spec, local, dev, gens, bar, reuse=not task.dense, audit=audit,
                                   resume=resume) if local else []  # fmt: skip
            outputs, audit = _gather_ranks(outputs, audit)
            saved.save_spec(i, outputs, None if audit is None else audit.to_dict())
        else:
            bar.update(len(local) * (len(spec.levels) if spec.kind == "noise" else 1))
        if spec.kind == "clean":
            probs = _probabilities(task, outputs[0]) if task.calibrated else None  # none for per-pixel outputs
            res.clean_outputs, res.clean_probs = outputs[0], probs
        for level, out in zip(spec.levels, outputs):
            res.rows += metric_rows(task, spec, level, out, targets)
            if not bool(torch.isfinite(out).all()):
                res.nonfinite.append(spec.threat if spec.kind == "clean" else f"{spec.threat}@{level:.4g}")
        if audit is not None and res.clean_outputs is not None:
            res.audits[spec.threat] = audit
            res.rows += breakdown_rows(spec.threat, audit, task.correct(res.clean_outputs, targets))
        if spec.kind == "attack":
            res.curves.append(_curve(task, spec, outputs, targets))
            if res.clean_probs is not None:  # reliability diagrams under attack (not for dense tasks)
                res.reliability[spec.threat] = [_bins(task, o, targets) for o in outputs]
    return res


def _gather_ranks(outputs: list[Tensor], audit: AttackAudit | None) -> tuple[list[Tensor], AttackAudit | None]:
    """Under ``torchrun``: every rank's outputs (per level) and audit, in rank (= dataset) order. A rank without
    batches (fewer batches than ranks) has no outputs and adds nothing."""
    if not world().parallel:
        return outputs, audit
    parts = [p for p in gather_objects((outputs, audit)) if p[0]]
    merged = [torch.cat([p[0][k] for p in parts]) for k in range(len(parts[0][0]))]
    audits = [p[1] for p in parts if p[1] is not None]
    for later in audits[1:]:
        audits[0].merge(later)
    return merged, audits[0] if audits else None


def metric_rows(task: Task, spec: ThreatSpec, level: float, outputs: Tensor, targets: Tensor) -> list[dict[str, Any]]:
    """Tidy rows of every metric for one threat level. Shape: ``outputs (N, *)``, ``targets (N, *)``.

    When any output is NaN or infinite every value is NaN (``null`` in results.json): the predicate of a NaN
    output is arbitrary, so its accuracy would be a number that means nothing (the ``finite_outputs`` check fails).
    """
    values = dict(task.metrics(outputs, targets))
    base = {"threat": spec.threat, "norm": spec.norm, "level": float(level)}
    if task.calibrated:  # calibration from class probabilities (not for Dice / MRE / SDR)
        probs = _probabilities(task, outputs).numpy()
        y = targets.detach().cpu().numpy()
        values["rmsce"] = cal.rmsce(probs, y)
        values["ece"] = cal.ece(probs, y)
        values["entropy"] = cal.mean_entropy(probs, multilabel=task.kind == "multilabel")
    finite = bool(torch.isfinite(outputs).all())
    return [{**base, "metric": k, "value": float(v) if finite else math.nan, "n": len(outputs)}
            for k, v in values.items()]  # fmt: skip


def _curve(task: Task, spec: ThreatSpec, outputs: list[Tensor], targets: Tensor) -> C.Curve:
    correct = tuple(task.correct(o, targets).cpu() for o in outputs)
    accuracy = tuple(float(c.float().mean()) if bool(torch.isfinite(o).all()) else math.nan
                     for c, o in zip(correct, outputs))  # fmt: skip
    return C.Curve(
        threat=spec.threat, name=spec.name, norm=str(spec.norm), levels=spec.levels,
        accuracy=accuracy, correct=correct, options=dict(spec.options),
    )  # fmt: skip


def _checks(
    model: nn.Module, task: Task, grid: _GridOutput, batches: Sequence[Batch], targets: Tensor, probe_n: int,
    dev: torch.device, gen: torch.Generator,
) -> list[C.Check]:  # fmt: skip
    n = len(targets)
    clean_acc = next(r["value"] for r in grid.rows if r["threat"] == "clean" and r["metric"] == "accuracy")
    x_all = _first_images(batches, probe_n).to(dev)
    y_all = targets[:probe_n].to(dev)
    assert grid.clean_outputs is not None  # the clean threat always runs first
    independent = task.kind == "multilabel" or bool(getattr(task, "single_logit", False))
    out = [C.check_finite_outputs(grid.nonfinite)]
    out += [C.check_majority(clean_acc, targets)] if task.has_majority_rate else []
    if task.calibrated:  # class probabilities per sample come from logits
        out.append(C.check_logits(grid.clean_outputs, independent=independent))
    out.append(C.check_gradients(model, task, x_all, y_all))
    out += [A.check_deterministic(model, x_all), A.check_gradient_free_forward(model, x_all)]
    for threat, audit in grid.audits.items():
        out += [c for c in (A.check_perturbations(threat, audit), A.check_square_vs_gradient(threat, audit)) if c]
    attack_curves = grid.curves
    for curve in attack_curves:
        out += [c for c in (C.check_eps_zero(curve, clean_acc, n), C.check_monotone(curve)) if c is not None]
        if curve.name == "noise":
            continue
        out.append(C.check_large_eps(model, task, curve, x_all, y_all, gen))
        noise = next((c for c in attack_curves if c.name == "noise" and c.norm == curve.norm), None)
        res = C.check_noise_vs_attack(model, task, curve, noise, x_all, y_all, gen)
        if res is not None:
            out.append(res)
    return out


def check_finite_inputs(batches: Sequence[Batch]) -> None:
    """Refuse inputs holding NaN or Inf (a model's output on them would be meaningless).

    Raises:
        DataError: one line naming the first such sample by its position in the evaluated data.
    """
    seen = 0
    for x, _ in batches:
        bad = (~torch.isfinite(x.float())).flatten(1).any(dim=1).nonzero()
        if len(bad):
            raise DataError(f"evaluation sample {seen + int(bad[0])} holds NaN or Inf; fix or drop it")
        seen += len(x)


def _bins(task: Task, outputs: Tensor, targets: Tensor) -> dict[str, Any]:
    """Top-label reliability bins of ``outputs`` (the clean ones live in ``summary["reliability"]``)."""
    b = cal.reliability_bins(_probabilities(task, outputs).numpy(), targets.detach().cpu().numpy())
    return json_safe({"edges": b.edges.tolist(), "confidence": b.confidence.tolist(), "accuracy": b.accuracy.tolist(),
                      "count": b.count.tolist()})  # fmt: skip


def _with_attack_reliability(summary: dict[str, Any], bins: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Add ``reliability`` (bins per level) to each attack threat of ``summary`` that has them."""
    for t in summary["threats"]:
        if t["threat"] in bins:
            t["reliability"] = bins[t["threat"]]
    return summary


def _probabilities(task: Task, outputs: Tensor) -> Tensor:
    return task.probabilities(outputs).detach().cpu().double()  # type: ignore[attr-defined]


def _generator(seed: int, index: int, device: torch.device, batch: int | None = None) -> torch.Generator:
    """The generator of threat ``index`` (of its ``batch``, when given: the same on any number of ranks)."""
    entropy = [seed, index + 1] if batch is None else [seed, index + 1, batch]
    derived = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(derived)


class SplitBatches(Sequence[Batch]):
    """The batches of a dataset that has ``batch(index)`` (an :class:`~medrobust.data.ArrayDataset`), gathered
    each time one is used: a split read from disk (``--dataset cache``) is never held whole.

    Args:
        data: the dataset.
        chunks: each batch's dataset indices, ``(B,)`` each.
    """

    def __init__(self, data: Any, chunks: list[Tensor]) -> None:
        self.data, self.chunks = data, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    @overload
    def __getitem__(self, k: int) -> Batch: ...

    @overload
    def __getitem__(self, k: slice) -> SplitBatches: ...

    def __getitem__(self, k: int | slice) -> Batch | SplitBatches:
        if isinstance(k, slice):
            return SplitBatches(self.data, self.chunks[k])
        x, y, _ = self.data.batch(self.chunks[k])
        return x, y

    def pick(self, which: list[int]) -> SplitBatches:
        """The batches numbered ``which``, in that order."""
        return SplitBatches(self.data, [self.chunks[b] for b in which])


def _batches(data: Any, batch_size: int, n: int | None, seed: int) -> Sequence[Batch]:
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        total = len(data)
        idx = torch.arange(total)
        if n is not None and n < total:
            perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
            idx = perm[:n].sort().values
        if hasattr(data, "batch"):
            return SplitBatches(data, list(idx.split(batch_size)))
        data = torch.utils.data.DataLoader(torch.utils.data.Subset(data, idx.tolist()), batch_size=batch_size)
    elif n is not None:
        raise ConfigError("a subset size n needs a dataset, not a loader; subset the data yourself")
    return [(b[0], b[1]) for b in data]


def _first_images(batches: Sequence[Batch], n: int) -> Tensor:
    """The first ``n`` images of ``batches`` (all of them if fewer), reading only the batches that hold them."""
    xs, have = [], 0
    for x, _ in batches:
        xs.append(x)
        have += len(x)
        if have >= n:
            break
    return torch.cat(xs)[:n]


def versions() -> dict[str, Any]:
    """Versions of medrobust, torch, numpy and Python, and the :func:`~medrobust.runtime.provenance` of the run."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("medrobust")
    except PackageNotFoundError:
        mine = "unknown"
    return {
        "medrobust": mine,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        **provenance(),
    }
