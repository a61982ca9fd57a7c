"""Auto-PGD (APGD): step-size-free PGD with momentum, untargeted or targeted over the top-k other classes.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks",
ICML 2020 (arXiv 2003.01690), Algorithm 1; defaults from the official ``autoattack/autopgd_base.py``
(fra31/auto-attack at a392200): 100 iterations, step ``η = 2ε``, momentum ``α = 0.75`` (1 at the first step),
checkpoints ``w_0 = 0``, ``p_{j+1} = p_j − max(p_j − p_{j−1} − 0.03, 0.06)`` realised as the official windows
``⌈0.22·n⌉, …`` shrinking by ``⌈0.03·n⌉`` down to ``⌈0.06·n⌉``, ``ρ = 0.75``. At a checkpoint a sample's step is
halved and it restarts from its best point when its loss rose in at most ``ρ·k`` of the last ``k`` steps, or when
its step was not halved at the previous checkpoint and its best loss did not improve since.

One departure, named: the official code compares the first window's first loss with an unset entry (zero, by
index wrap-around); here it is compared with the start's loss, as in the paper's condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from medrobust.attacks.ascent import Iterate, gradient_ascent
from medrobust.attacks.base import ATTACKS, AttackResult, WorstCase, prepare
from medrobust.attacks.losses import APGD_LOSSES, AttackLoss, is_multiclass, top_other_classes
from medrobust.attacks.pgd import KeepWorst
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, box, check_norm, direction, project, view
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task

__all__ = ["APGD", "APGDStep", "apgd_start", "checkpoints"]


def checkpoints(steps: int) -> list[int]:
    """The iterations after which APGD checks its step size (the official window schedule).

    Examples:
        >>> checkpoints(100)[:6]
        [22, 41, 57, 70, 80, 87]
    """
    k, size_decr, k_min = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at = [], 0
    while at + k <= steps:
        at += k
        out.append(at)
        k = max(k - size_decr, k_min)
    return out


def apgd_start(x: Tensor, eps: Tensor, norm: Norm, generator: torch.Generator | None) -> Tensor:
    """APGD's random start on the sphere: ``x + ε·t/‖t‖`` (L∞: ``t ~ U[−1, 1)``; L2: ``t ~ N(0, I)``), in [0, 1].

    Shape:
        - x: ``(N, *)``; eps: ``(N,)``; returns ``(N, *)``.
    """
    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
        scale = t.flatten(1).abs().amax(dim=1)
    else:
        t = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        scale = t.flatten(1).norm(dim=1)
    return (x + view(eps / (scale + 1e-12), x) * t).clamp_(0, 1)


@dataclass
class APGDStep:
    """APGD's step rule for :func:`~medrobust.attacks.ascent.gradient_ascent` (per-sample state, subsettable).

    Shape:
        - centre: ``(N, *)``; eps, size: ``(N,)``.
    """

    centre: Tensor
    eps: Tensor
    norm: Norm
    steps: int
    rho: float = 0.75
    momentum: float = 0.75
    bounds: tuple[Tensor, Tensor] | None = None
    state: dict[str, Tensor] = field(default_factory=dict)
    schedule: list[int] = field(default_factory=list)

    @classmethod
    def around(cls, x: Tensor, eps: Tensor, norm: Norm, steps: int, rho: float = 0.75) -> APGDStep:
        """The rule for the ball of radius ``eps`` around ``x`` with ``steps`` iterations."""
        bounds = box(x, eps) if norm == "linf" else None
        return cls(x.detach(), eps, norm, steps, rho, bounds=bounds, schedule=checkpoints(steps))

    def _project(self, x: Tensor) -> Tensor:
        return project(x, self.centre, self.eps, self.norm, self.bounds)

    def _track(self, x: Tensor, grad: Tensor, value: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """Update the best point and the oscillation count; at a checkpoint halve steps and restart from the best."""
        s = self.state
        if t == 0:
            s.update(best=value.clone(), x_best=x.clone(), g_best=grad.clone(), prev=value.clone(),
                     rises=torch.zeros_like(value), size=2 * self.eps.to(value.dtype), x_old=x.clone(),
                     reduced=torch.ones_like(value, dtype=torch.bool), best_then=value.clone())  # fmt: skip
            return x, grad
        s["rises"] += (value > s["prev"]).to(value.dtype)
        s["prev"] = value.clone()
        better = value > s["best"]
        s["best"] = torch.where(better, value, s["best"])
        s["x_best"] = torch.where(view(better, x), x, s["x_best"])
        s["g_best"] = torch.where(view(better, grad), grad, s["g_best"])
        if t not in self.schedule:
            return x, grad
        window = t - max([c for c in self.schedule if c < t], default=0)
        halve = (s["rises"] <= window * self.rho) | (~s["reduced"] & (s["best_then"] >= s["best"]))
        s["size"] = torch.where(halve, s["size"] / 2, s["size"])
        s["reduced"], s["best_then"], s["rises"] = halve, s["best"].clone(), torch.zeros_like(value)
        return torch.where(view(halve, x), s["x_best"], x), torch.where(view(halve, grad), s["g_best"], grad)

    def __call__(self, x: Tensor, grad: Tensor, value: Tensor, t: int) -> Tensor:
        """The momentum step from ``x`` (or its best point, after a halving) along ``grad``."""
        x, grad = self._track(x, grad, value, t)
        s = self.state
        a = 1.0 if t == 0 else self.momentum
        z = self._project(x + view(s["size"], x) * direction(grad, self.norm))
        moved = self._project(x + a * (z - x) + (1 - a) * (x - s["x_old"]))
        s["x_old"] = x
        return moved

    def keep(self, mask: Tensor) -> APGDStep:
        """The rule for the rows in ``mask``."""
        bounds = None if self.bounds is None else (self.bounds[0][mask], self.bounds[1][mask])
        state = {k: v[mask] for k, v in self.state.items()}
        return APGDStep(
            self.centre[mask], self.eps[mask], self.norm, self.steps, self.rho, self.momentum, bounds, state,
            self.schedule,
        )  # fmt: skip


@ATTACKS.register("apgd", help="Auto-PGD (Croce & Hein 2020): step-size-free PGD, CE/DLR, targeted top-k")
@dataclass(frozen=True)
class APGD:
    """Auto-PGD on any task, untargeted or targeted over the ``targets`` highest-scoring other classes.

    Every iterate is scored and per sample the worst point is kept (a fooled point first, then the highest
    loss), as in :class:`~medrobust.attacks.PGD`. Restarts and further targets run only on the samples still
    robust; with ``early_stop`` a sample stops at its first fooled iterate. "Fooled" is always untargeted
    (``task.correct`` fails), as in AutoAttack's targeted APGD.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations (100).
        restarts: random restarts per target (1, AutoAttack's standard version; 5 in its ``plus`` version).
        loss: ``"ce"``, ``"dlr"`` (DLR, or its scale-invariant stand-in where DLR is undefined; see
            :mod:`medrobust.attacks.losses`) or ``"margin"``.
        targets: 0 for untargeted; ``k > 0`` runs targeted DLR towards each of the top ``min(k, K − 1)`` other
            classes in turn (multi-class tasks with K ≥ 3; AutoAttack's APGD-T uses 9).
        rho: the oscillation threshold ρ (0.75).
        early_stop: stop a sample at its first fooled iterate.
        train_mode: run the model in train mode during the attack; default eval mode.

    Shape:
        - x: ``(N, *)`` in [0, 1]; y: targets of ``task``; eps: float or ``(N,)``.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from medrobust.tasks import ClassificationTask
        >>> model = nn.Linear(2, 1)
        >>> _ = model.weight.data.copy_(torch.tensor([[1.0, 0.0]])); _ = model.bias.data.fill_(-0.5)
        >>> x = torch.tensor([[0.55, 0.5], [0.7, 0.5]])
        >>> r = APGD(norm="linf", steps=20)(model, x, torch.ones(2), task=ClassificationTask("binary"), eps=0.1)
        >>> r.fooled.tolist()
        [True, False]
    """

    norm: Norm = "linf"
    steps: int = 100
    restarts: int = 1
    loss: str = "ce"
    targets: int = 0
    rho: float = 0.75
    early_stop: bool = True
    train_mode: bool = False

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.steps < 1 or self.restarts < 1 or self.targets < 0:
            raise ConfigError(f"APGD needs steps ≥ 1, restarts ≥ 1, targets ≥ 0; got {self.steps}, "
                              f"{self.restarts}, {self.targets}")  # fmt: skip
        if self.loss not in APGD_LOSSES:
            raise ConfigError(f"unknown APGD loss {self.loss!r}; use one of {', '.join(APGD_LOSSES)}")
        if not 0 < self.rho < 1:
            raise ConfigError(f"APGD's rho must lie in (0, 1); got {self.rho}")

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
        """Attack ``model`` at ``(x, y)``; ``rows`` as for :class:`~medrobust.attacks.PGD` (whole-batch draws)."""
        x, e, rows = prepare(x, y, task, eps, generator, rows)
        if self.targets and not (is_multiclass(task) and int(getattr(task, "num_classes", 0)) >= 3):
            raise ConfigError("targeted APGD needs a multi-class task with at least 3 classes; use targets=0")
        with model_mode(model, self.train_mode):
            with torch.no_grad():
                clean = model(x[rows])
            losses = self._losses(task, clean, y[rows])
            best: WorstCase | None = None
            steps_run = 0
            for loss in losses:
                for _ in range(self.restarts):
                    todo = torch.arange(len(rows), device=x.device) if best is None else (~best.fooled).nonzero()[:, 0]
                    if todo.numel() == 0:
                        return self._result(best, steps_run)
                    run, n = self._run(model, x, y, e, rows, todo, task, loss, generator)
                    steps_run += n
                    if best is None:
                        best = run
                    else:
                        best.update(todo, run.x, run.out, run.fooled, run.score)
        return self._result(best, steps_run)

    @staticmethod
    def _result(best: WorstCase | None, steps_run: int) -> AttackResult:
        assert best is not None, "APGD runs at least once"
        return best.result(steps_run)

    def _losses(self, task: Task, clean: Tensor, y: Tensor) -> list[AttackLoss]:
        """One loss per run sequence: untargeted, or one targeted DLR per target rank."""
        margin = task.margin(clean, y).float()
        if self.targets == 0:
            return [AttackLoss(task, self.loss, y, clean_margin=margin)]
        num_classes = int(getattr(task, "num_classes", 0))
        ranked = top_other_classes(clean, y, min(self.targets, num_classes - 1))
        top = clean.float().sort(dim=1, descending=True).values
        spread = top[:, 0] - top[:, 2]
        return [
            AttackLoss(task, "dlr", y, clean_margin=margin, aim=ranked[:, j], clean_range=spread)
            for j in range(ranked.shape[1])
        ]

    def _run(
        self, model: nn.Module, x: Tensor, y: Tensor, eps: Tensor, rows: Tensor, todo: Tensor, task: Task,
        loss: AttackLoss, generator: torch.Generator | None,
    ) -> tuple[WorstCase, int]:  # fmt: skip
        """One APGD run on ``rows[todo]``; the start is drawn for the whole batch."""
        picked = rows[todo]
        start = apgd_start(x, eps, self.norm, generator)[picked]
        keeper = KeepWorst(task, loss.name, loss.name, False, self.early_stop)

        def observe(it: Iterate) -> Tensor | None:  # the core's targets are row indices of ``loss``; judge labels
            return keeper(replace(it, target=loss.y[it.target]))

        run = gradient_ascent(
            model,
            start,
            todo,
            loss,
            APGDStep.around(x[picked], eps[picked], self.norm, self.steps, self.rho),
            steps=self.steps,
            observe=observe,
        )
        return keeper.worst(), run.steps
