"""Projected gradient descent (PGD) and its no-random-start preset I-FGSM.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018; Kurakin et al.,
"Adversarial examples in the physical world", 2017 (I-FGSM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medrobust.attacks.ascent import Iterate, ProjectedStep, gradient_ascent
from medrobust.attacks.base import (
    ATTACKS,
    LOSSES,
    AttackResult,
    LossName,
    WorstCase,
    objective,
    prepare,
    success,
)
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, check_norm, random_start
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task


@ATTACKS.register("pgd", help="projected gradient descent (Madry et al. 2018), L∞ or L2")
@dataclass(frozen=True)
class PGD:
    """Projected gradient descent on the ε-ball ∩ [0, 1], batched, with a per-sample ε.

    Each step moves by ``step·sign(∇)`` (L∞) or ``step·∇/‖∇‖₂`` (L2) of the summed per-sample objective (so a
    sample's gradient does not depend on the batch) and projects back. Every iterate is evaluated, and per
    sample the worst point is kept: a fooled iterate if any run found one (then the one with the highest
    score), else the iterate with the highest score. The score is the attack loss, or ``task.margin`` when
    several losses are combined. Restarts and extra losses only run on samples that are not fooled yet.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps per run.
        rel_step: step length ``rel_step·ε/steps`` (Madry: 2.5; IMA evaluation: 100 steps, ``rel_step=10``).
        step_size: absolute step length, the same for every sample whatever its ε (overrides ``rel_step``).
        random_start: start uniformly in the ball (L∞ cube; L2 Gaussian direction, radius ``ε·U^(1/d)``).
        restarts: independent random starts per loss.
        loss: ``"ce"`` (``task.loss``), ``"margin"`` (``task.margin``, CW-style) or a tuple of both
            (worst case over the losses).
        targeted: ``y`` holds target labels; the attack minimises the loss towards them and ``fooled`` means
            the model predicts the target.
        early_stop: stop moving a sample once it is fooled and keep that first fooled iterate.
        train_mode: run the model in train mode during the attack (IMA's quirk: batch-norm sees the iterates,
            and with ``early_stop``/restarts it sees the remaining subset); default eval mode.

    Shape:
        - x: ``(N, *)`` in [0, 1]; y: targets of ``task``; eps: float or ``(N,)``.
    """

    norm: Norm = "linf"
    steps: int = 10
    rel_step: float = 2.5
    step_size: float | None = None
    random_start: bool = True
    restarts: int = 1
    loss: LossName | tuple[LossName, ...] = "ce"
    targeted: bool = False
    early_stop: bool = False
    train_mode: bool = False

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.steps < 1:
            raise ConfigError(f"PGD needs steps >= 1; got {self.steps}")
        if not self.rel_step > 0:
            raise ConfigError(f"rel_step must be > 0; got {self.rel_step}")
        if self.step_size is not None and not self.step_size > 0:
            raise ConfigError(f"step_size must be > 0 (or None for rel_step·eps/steps); got {self.step_size}")
        if self.restarts < 1:
            raise ConfigError(f"restarts must be >= 1; got {self.restarts}")
        if self.restarts > 1 and not self.random_start:
            raise ConfigError("restarts > 1 repeat the same run without random_start; set random_start=True")
        if not self.losses or any(name not in LOSSES for name in self.losses):
            raise ConfigError(f"unknown PGD loss {self.loss!r}; use 'ce', 'margin' or ('ce', 'margin')")

    @property
    def losses(self) -> tuple[str, ...]:
        """The attack losses as a tuple."""
        return (self.loss,) if isinstance(self.loss, str) else tuple(self.loss)

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
        """Attack ``model`` at ``(x, y)`` with radius ``eps``; see the class docstring.

        ``rows`` ``(M,)`` attacks only those rows of the batch and returns ``M`` results. Every random start is drawn
        for the whole batch and then indexed, so what happens to a row does not depend on which other rows are
        attacked: an ε sweep that skips broken samples gets exactly the starts of an independent run.
        """
        x, e, rows = prepare(x, y, task, eps, generator, rows)
        score_loss = self.losses[0] if len(self.losses) == 1 else "margin"
        runs = [name for name in self.losses for _ in range(self.restarts)]
        with model_mode(model, self.train_mode), torch.enable_grad():
            best, steps_run = self._run(model, x, y, e, rows, task, runs[0], score_loss, generator)
            for name in runs[1:]:
                todo = (~best.fooled).nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                run, n = self._run(model, x, y, e, rows[todo], task, name, score_loss, generator)
                best.update(todo, run.x, run.out, run.fooled, run.score)
                steps_run += n
        return best.result(steps_run)

    def _run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        eps: Tensor,
        rows: Tensor,
        task: Task,
        loss: str,
        score_loss: str,
        generator: torch.Generator | None,
    ) -> tuple[WorstCase, int]:
        """One PGD run on ``rows`` of the batch; returns their worst iterates and the gradient steps taken."""
        start = (random_start(x, eps, self.norm, generator) if self.random_start else x)[rows]
        x, y, eps = x[rows], y[rows], eps[rows]
        size = eps * (self.rel_step / self.steps) if self.step_size is None else torch.full_like(eps, self.step_size)
        keeper = KeepWorst(task, loss, score_loss, self.targeted, self.early_stop)
        run = gradient_ascent(
            model,
            start,
            y,
            lambda out, target: objective(task, out, target, loss, self.targeted),
            ProjectedStep.around(x, eps, size, self.norm),
            steps=self.steps,
            observe=keeper,
        )
        return keeper.worst(), run.steps


@dataclass
class KeepWorst:
    """Observer keeping each sample's worst iterate (:class:`WorstCase`); with ``early_stop`` it stops fooled ones.

    The score is the attack objective, or ``score_loss``'s objective when the two differ.
    """

    task: Task
    loss: str
    score_loss: str
    targeted: bool
    early_stop: bool
    best: WorstCase | None = None

    def __call__(self, it: Iterate) -> Tensor | None:
        """Merge ``it`` into the worst case; return the fooled mask to stop when early stopping."""
        fooled = success(self.task, it.output, it.target, self.targeted)
        same = self.score_loss == self.loss
        score = it.value if same else objective(self.task, it.output, it.target, self.score_loss, self.targeted)
        if self.best is None:
            self.best = WorstCase(it.x.clone(), it.output, fooled, score)
        else:
            self.best.update(it.rows, it.x, it.output, fooled, score)
        return fooled if self.early_stop else None

    def worst(self) -> WorstCase:
        """The worst case found (the start at least)."""
        assert self.best is not None, "gradient_ascent scores the start before anything else"
        return self.best


@ATTACKS.register("ifgsm", help="I-FGSM (Kurakin et al. 2017): PGD without random start, 10 steps of eps/4")
def ifgsm(
    norm: Norm = "linf",
    steps: int = 10,
    rel_step: float = 2.5,
    loss: LossName | tuple[LossName, ...] = "ce",
    targeted: bool = False,
    early_stop: bool = False,
    train_mode: bool = False,
) -> PGD:
    """I-FGSM: :class:`PGD` without random start; 10 steps of ``ε/4`` by default."""
    return PGD(
        norm=norm,
        steps=steps,
        rel_step=rel_step,
        random_start=False,
        loss=loss,
        targeted=targeted,
        early_stop=early_stop,
        train_mode=train_mode,
    )
