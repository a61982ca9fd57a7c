"""AutoAttack: a cascade of parameter-free attacks, each run only on the points still robust, worst case kept.

Croce & Hein, ICML 2020 (arXiv 2003.01690); versions as the official ``autoattack/autoattack.py``
(fra31/auto-attack at a392200, ``set_version``): ``standard`` = APGD-CE (1 restart), APGD-T (targeted DLR over
the 9 highest other classes, 1 restart), FAB-T, Square (5,000 queries); ``plus`` = APGD-CE and APGD-DLR (5
restarts each), FAB, Square, APGD-T, FAB-T.

Where AutoAttack fails, this cascade keeps working (see :mod:`medrobust.attacks.losses`): on binary (one or two
logits), multi-label and dense tasks the targeted member is replaced by APGD on the scale-invariant DLR stand-in,
and Square runs on any number of spatial axes. FAB is not included: its step needs the Jacobian of every class
logit (one backward per class and step) and a linearised projection defined for class logits only, so it has no
counterpart for multi-label or dense tasks; the members here already include a score-based attack (Square) as
the check against gradient masking. Each member draws from its own generator forked from the caller's and its
random draws are made for the whole batch, so a point's fate under a member does not depend on the others: the
cascade breaks exactly the union of what its members break on their own (never a higher robust accuracy than
any member). It reports, per point, the first member that broke it (``details["broken_by"]``, −1 for none).
On dense tasks, whose headline metrics are continuous (Dice, radial error), every member runs on every point and
each point keeps the result with the larger task margin (lower Dice, larger error), not the first that crossed
the predicate's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medrobust.attacks.apgd import APGD
from medrobust.attacks.base import ATTACKS, AttackResult, prepare
from medrobust.attacks.losses import is_multiclass
from medrobust.attacks.square import Square
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, check_norm
from medrobust.runtime import fork_generators
from medrobust.tasks.base import Task

__all__ = ["VERSIONS", "AutoAttack"]

VERSIONS: tuple[str, ...] = ("standard", "plus")


@ATTACKS.register("autoattack", help="AutoAttack cascade (Croce & Hein 2020): APGD-CE, APGD-T/DLR, Square")
@dataclass(frozen=True)
class AutoAttack:
    """The AutoAttack cascade on any task (see the module docstring).

    Args:
        norm: ``"linf"`` or ``"l2"``.
        version: ``"standard"`` or ``"plus"``.
        steps: APGD iterations (100).
        queries: Square queries (5,000).
        targets: target classes of APGD-T (9; fewer when the task has fewer other classes).
        train_mode: run the model in train mode; default eval mode (AutoAttack refuses randomised models).

    Shape:
        - x: ``(N, C, *spatial)`` in [0, 1]; eps: float or ``(N,)``.
    """

    norm: Norm = "linf"
    version: str = "standard"
    steps: int = 100
    queries: int = 5000
    targets: int = 9
    train_mode: bool = False

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.version not in VERSIONS:
            raise ConfigError(f"unknown AutoAttack version {self.version!r}; use one of {', '.join(VERSIONS)}")

    def members(self, task: Task) -> list[tuple[str, APGD | Square]]:
        """The cascade's attacks for ``task``, in order, with their names."""
        norm, steps, train = self.norm, self.steps, self.train_mode
        restarts = 1 if self.version == "standard" else 5
        targeted = is_multiclass(task) and int(getattr(task, "num_classes", 0)) >= 3
        ce: tuple[str, APGD | Square] = ("apgd-ce", APGD(norm, steps, restarts, "ce", train_mode=train))
        dlr: tuple[str, APGD | Square] = ("apgd-dlr", APGD(norm, steps, restarts, "dlr", train_mode=train))
        t: tuple[str, APGD | Square] = ("apgd-t", APGD(norm, steps, 1, "dlr", self.targets, train_mode=train))
        square: tuple[str, APGD | Square] = ("square", Square(norm, self.queries, train_mode=train))
        if self.version == "standard":
            return [ce, t if targeted else dlr, square]
        return [ce, dlr, square, t] if targeted else [ce, dlr, square]

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        task: Task,
        eps: float | Tensor,
        generator: torch.Generator | None = None,
        rows: Tensor | None = None,
    ) -> AttackResult:
        """Run the cascade; ``details["broken_by"]`` ``(M,)`` holds each point's breaking member index or −1."""
        x, e, rows = prepare(x, y, task, eps, generator, rows)
        members = self.members(task)
        broken_by = torch.full((rows.numel(),), -1, dtype=torch.long, device=x.device)
        result: AttackResult | None = None
        steps = 0
        gens = fork_generators(generator, len(members), x.device)
        dense = bool(getattr(task, "dense", False))
        every = torch.arange(rows.numel(), device=x.device)
        for k, ((_, attack), gen) in enumerate(zip(members, gens)):
            todo = every if result is None or dense else (~result.fooled).nonzero()[:, 0]
            if todo.numel() == 0:
                break
            run = attack(model, x, y, task=task, eps=e, generator=gen, rows=rows[todo])
            steps += run.steps_run
            broken_by[todo[run.fooled & (broken_by[todo] < 0)]] = k
            if result is None:
                result = run
            else:
                result = _worse(result, run, task, y[rows]) if dense else _merge(result, todo, run)
        assert result is not None
        names = [name for name, _ in members]
        return AttackResult(
            result.x_adv, result.fooled, result.output, steps, {"broken_by": broken_by, "members": names}
        )


def _worse(best: AttackResult, run: AttackResult, task: Task, y: Tensor) -> AttackResult:
    """Per point, the result with the larger task margin (dense tasks: the lower Dice / larger error)."""
    take = task.margin(run.output, y) > task.margin(best.output, y)
    x_adv = torch.where(take.view(-1, *[1] * (best.x_adv.ndim - 1)), run.x_adv, best.x_adv)
    output = torch.where(take.view(-1, *[1] * (best.output.ndim - 1)), run.output, best.output)
    return AttackResult(x_adv, best.fooled | run.fooled, output, best.steps_run + run.steps_run)


def _merge(best: AttackResult, todo: Tensor, run: AttackResult) -> AttackResult:
    """Replace the rows ``todo`` of ``best`` where ``run`` fooled the model (robust rows keep the earlier point)."""
    x_adv, output, fooled = best.x_adv.clone(), best.output.clone(), best.fooled.clone()
    take = todo[run.fooled]
    x_adv[take], output[take], fooled[take] = run.x_adv[run.fooled], run.output[run.fooled], True
    return AttackResult(x_adv, fooled, output, best.steps_run + run.steps_run)
