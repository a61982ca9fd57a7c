"""One pass of the evaluation grid: the model's outputs under one threat (clean, an attack's ε sweep, a noise),
batch by batch, with the attack's audit and, for a resumable evaluation, its finished batches saved."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from medrobust import faults
from medrobust.corruptions import CORRUPTIONS
from medrobust.evaluation.attack_checks import AttackAudit
from medrobust.evaluation.resume import Progress
from medrobust.evaluation.sweep import build_attack, pgd_sweep
from medrobust.evaluation.threats import ThreatSpec
from medrobust.tasks.base import Task

__all__ = ["AttackResume", "forward", "spec_outputs"]

Batch = tuple[Tensor, Tensor]


def spec_outputs(
    model: nn.Module, task: Task, spec: ThreatSpec, batches: Sequence[Batch], dev: torch.device,
    gen: torch.Generator | Sequence[torch.Generator], bar: Any, *, reuse: bool, audit: AttackAudit | None = None,
    resume: AttackResume | None = None,
) -> list[Tensor]:  # fmt: skip
    """Outputs of ``model`` (already in eval mode on ``dev``) under ``spec``, one ``(N, *)`` CPU tensor per level;
    ``bar`` ticks once per batch and pass. ``gen``: one generator for all batches or one per batch. ``reuse``:
    attack the ε list as one sweep (see :func:`_attack_outputs`); ``audit`` collects the adversarial points'
    statistics; ``resume`` continues an attack after its saved batches."""
    gens = [gen] * len(batches) if isinstance(gen, torch.Generator) else list(gen)
    if spec.kind == "clean":
        return [torch.cat([forward(model, x) for x, _ in _tick(batches, bar, dev)])]
    if spec.kind == "attack":
        return _attack_outputs(model, task, spec, batches, dev, bar, gens, reuse=reuse, audit=audit, resume=resume)
    corruption = CORRUPTIONS.create(spec.name, **spec.options)
    return [
        torch.cat([forward(model, corruption(x, v, generator=g)) for (x, _), g in zip(_tick(batches, bar, dev), gens)])
        for v in spec.levels
    ]


@dataclass
class AttackResume:
    """Where an attack threat saves its finished batches (threat ``spec`` of ``saved``)."""

    saved: Progress
    spec: int


def _attack_outputs(
    model: nn.Module, task: Task, spec: ThreatSpec, batches: Sequence[Batch], dev: torch.device, bar: Any,
    gens: Sequence[torch.Generator], *, reuse: bool, audit: AttackAudit | None = None,
    resume: AttackResume | None = None,
) -> list[Tensor]:  # fmt: skip
    """Model outputs at the adversarial points, one ``(N, *)`` CPU tensor per ε.

    ``reuse`` sweeps the ε list per batch with early stopping, keeping a sample broken at a smaller ε. Dense tasks
    report continuous metrics (Dice, MRE), so a sample must be pushed as far as the attack can at every ε: there
    each ε is attacked independently from the clean input, without early stopping (the sweep's reuse would freeze
    a sample at the first point that crosses the predicate threshold).
    """
    attack = build_attack(spec.name, norm=str(spec.norm), early_stop=reuse, **spec.options)
    sweep = pgd_sweep if reuse else _independent_sweep
    per_batch = resume.saved.batches(resume.spec) if resume is not None else []  # each batch has its own generator
    bar.update(len(per_batch))
    done = len(per_batch)
    for (x, y), gen in zip(_tick(batches[done:], bar, dev), gens[done:]):
        results = sweep(model, x, y, task=task, attack=attack, eps_list=spec.levels, generator=gen)
        for k, r in enumerate(results if audit is not None else []):
            audit.add(k, x, r.x_adv, r.output, r.details)  # type: ignore[union-attr]
        per_batch.append([r.output.cpu() for r in results])
        if resume is not None and audit is not None:
            resume.saved.save_batch(resume.spec, per_batch, audit.to_dict())
    return [torch.cat([b[k] for b in per_batch]) for k in range(len(spec.levels))]


def _independent_sweep(
    model: nn.Module, x: Tensor, y: Tensor, *, task: Task, attack: Any, eps_list: Sequence[float],
    generator: torch.Generator | None = None,
) -> list[Any]:  # fmt: skip
    """One attack per ε from the clean input (no reuse across ε); the results in ε order."""
    return [attack(model, x, y, task=task, eps=e, generator=generator) for e in eps_list]


def _tick(batches: Sequence[Batch], bar: Any, dev: torch.device) -> Iterator[Batch]:
    for x, y in batches:
        faults.hit("evaluate.batch")
        yield x.to(dev), y.to(dev)
        bar.update(1)


def forward(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).detach().cpu()
