"""Attack sweeps over an increasing ε list, reusing the samples already broken.

A sample broken at ε₁ is also broken at every ε₂ > ε₁: the adversarial point found at ε₁ lies inside the
larger ball. :func:`pgd_sweep` keeps that point and attacks only the survivors at the next ε.

What it guarantees (tested in ``tests/test_evaluation_sweep.py``): each ε gets its own generator
(:func:`~medrobust.runtime.fork_generators`), and attacks that take ``rows`` (PGD, APGD, Square, AutoAttack) draw
their random starts for the whole batch, so every sample still robust at ε is attacked exactly as in the independent
run ``attack(model, x, y, eps=ε, generator=fork_generators(generator, len(eps_list))[k])``. The sweep reports a
sample broken at ε when that run breaks it **or** a run at a smaller ε did. Its robust accuracy is therefore never
higher than the independent run's, equal to it whenever the attack breaks at ε every sample it broke at a smaller ε,
and non-increasing in ε. With attacks without ``rows`` the survivors' random starts differ from the independent
run's (same distribution, other draws).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from medrobust.attacks import ATTACKS, AttackResult
from medrobust.runtime import fork_generators
from medrobust.tasks.base import Task

Attack = Callable[..., AttackResult]


def build_attack(name: str, *, norm: str, early_stop: bool = True, **options: Any) -> Attack:
    """Create a registered attack; ``early_stop`` is passed only to attacks that accept it."""
    params = inspect.signature(ATTACKS.get(name).factory).parameters
    if "early_stop" in params:
        options["early_stop"] = early_stop
    return ATTACKS.create(name, norm=norm, **options)


def pgd_sweep(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    task: Task,
    attack: Attack,
    eps_list: Sequence[float],
    generator: torch.Generator | None = None,
) -> list[AttackResult]:
    """Run ``attack`` at each ε of ``eps_list`` (ascending), attacking only samples not broken yet.

    Args:
        model: the model under attack.
        x: clean inputs in [0, 1].
        y: targets.
        task: defines the loss and the per-sample correctness.
        attack: an attack callable (build it with early stopping so each sample stops once fooled).
        eps_list: non-negative, strictly increasing ε values.
        generator: parent of the per-ε generators (:func:`~medrobust.runtime.fork_generators`).

    Returns:
        One :class:`AttackResult` per ε, in order. ``fooled`` and ``x_adv`` of a sample broken at a smaller ε
        carry over unchanged; ``steps_run`` counts the steps run at that ε (0 when every sample was broken).

    Shape:
        - x: ``(N, C, *spatial)``; y: ``(N, *)``.
        - each result: ``x_adv`` like ``x``, ``fooled (N,)``, ``output (N, *)``.
    """
    eps = [float(e) for e in eps_list]
    if any(e < 0 for e in eps) or any(b <= a for a, b in itertools.pairwise(eps)):
        raise ValueError(f"eps_list must be non-negative and increasing, got {eps}")
    if len(x) == 0:
        raise ValueError("pgd_sweep needs at least one sample")
    gens = fork_generators(generator, len(eps), x.device)
    by_rows = "rows" in inspect.signature(attack).parameters
    x_adv = x.detach().clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    output: Tensor | None = None
    details: dict[str, Any] = {}  # a cascade's breakdown, carried like x_adv
    results: list[AttackResult] = []
    for e, gen in zip(eps, gens):
        todo = (~fooled).nonzero().squeeze(1)
        steps = 0
        if todo.numel() > 0:
            if by_rows:
                r = attack(model, x, y, task=task, eps=e, generator=gen, rows=todo)
            else:
                r = attack(model, x[todo], y[todo], task=task, eps=e, generator=gen)
            if output is None:
                output = torch.empty((len(x), *r.output.shape[1:]), dtype=r.output.dtype, device=x.device)
            x_adv[todo] = r.x_adv.detach()
            output[todo] = r.output.detach()
            fooled[todo] = r.fooled
            steps = int(r.steps_run)
            _carry_breakdown(details, r.details, todo, len(x))
        assert output is not None  # set at the first ε, where no sample is fooled yet
        extra = {k: v.clone() if isinstance(v, Tensor) else v for k, v in details.items()}
        results.append(AttackResult(x_adv.clone(), fooled.clone(), output.clone(), steps, extra))
    return results


def _carry_breakdown(carried: dict[str, Any], new: dict[str, Any], todo: Tensor, n: int) -> None:
    """Write an AutoAttack result's ``broken_by`` for rows ``todo`` into the sweep's full-size record."""
    if "broken_by" not in new:
        return
    if "broken_by" not in carried:
        carried["broken_by"] = torch.full((n,), -1, dtype=torch.long, device=todo.device)
    carried["broken_by"][todo] = new["broken_by"]
    carried["members"] = new["members"]
