"""IMA: Increasing-Margin Adversarial training (Ma & Liang, "Increasing-Margin Adversarial (IMA) training to
improve adversarial robustness of neural networks", CMPB 2023, arXiv 2005.09147; METHODS §1.5).

Every training sample ``i`` owns a margin ``E[i]``: the radius at which it is attacked. Samples that survive the
attack get a larger margin next epoch (``E += δ``); samples that flip are pulled onto the decision boundary by
bisection, trained on there, and their margin moves towards the boundary distance. "Correct" is ``task.correct``
and the adversarial point is a :func:`~medrobust.methods.margin_attack.adversarial_point` choice, so AMAT
(arXiv 2206.01736) is the same algorithm with another predicate and ``stop="final"``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from medrobust.errors import DataError
from medrobust.geometry import Norm, check_norm
from medrobust.geometry import norm as norm_of
from medrobust.methods._common import choice, fraction, positive
from medrobust.methods.base import Batch, EpochContext, StepContext, StepOutput, TrainingMethod
from medrobust.methods.loss_threshold import PREDICATES, resolve_predicate
from medrobust.methods.margin_attack import (
    ATTACK_LOSSES,
    BRACKETS,
    REFINES,
    STARTS,
    STOPS,
    AttackLoss,
    Bracket,
    Refine,
    Start,
    Stop,
    adversarial_point,
    tracked_pgd,
)
from medrobust.methods.margin_report import margin_logs, save_margin_figure
from medrobust.methods.margins import Margins
from medrobust.runtime import model_device, model_mode
from medrobust.tasks.base import Task

REPORT_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
ADV_MEANS = ("batch", "adversarial")


class IMA(TrainingMethod):
    """Increasing-Margin Adversarial training (METHODS §1.5).

    Per batch: a clean train-mode forward; PGD on the whole batch with radius ``E[i]``, ``steps`` steps of
    ``alpha·E[i]/steps`` (L2-normalised gradient, sign for L∞), tracking each sample's flips; bisection
    (``refine_steps``, no gradient) of the clean-correct flipped samples onto the boundary; loss
    ``(1 − β)·mean L(x) + β·Σ_{i∈A} L(x_adv_i)/B`` with ``A`` = clean-correct and flipped and a separate
    train-mode forward of the adversarial points of ``A`` (skipped when ``A`` is empty);
    ``E_new[i] = (E_new[i] + ‖x_adv_i − x_i‖)/2`` for ``i ∈ A``. Epoch end: see :meth:`Margins.update`. Margins
    are checkpointed (exact resume).

    Logs per epoch ``margin_q10/q50/q90/mean``, ``margin_expanded`` (fraction of the samples seen whose margin
    grew; samples held at ``e_max`` do not count), ``margin_refined``, ``margin_acc@ε`` (training accuracy
    estimated from the margins) at ``report_eps`` (default ``e_max·(0, ¼, ½, ¾, 1)``),
    ``margin_epochs_without_expansion`` and, with ``margin_stable_epochs = N > 0``, ``margin_stable`` (1 once no
    margin grew for N epochs: a stop signal); writes ``margins_epoch{N:03d}.png`` into the run folder.

    Deviations from the official code, on purpose: only the clean-correct flipped samples are bisected and
    forwarded for the adversarial term (their points are the only ones the loss uses; the others would only cost
    time and shape the batch-norm statistics), so with train-mode batch norm those statistics are the subset's;
    where the final PGD iterate is back on the correct side, the first misclassified iterate is the far end of
    the bisection segment.

    Args:
        norm: ``"l2"`` (published) or ``"linf"``.
        delta: margin expansion step δ and initial margin (PathMNIST 0.03; COVID-CT 2.0).
        e_max: largest margin (PathMNIST 3.0; COVID-CT 12).
        alpha: PGD step ``alpha·E/steps`` (4).
        steps: PGD steps (20).
        beta: weight of the adversarial term (0.5).
        attack_loss: ``"ce"`` (summed task loss) or ``"margin"`` (soft logit margin, PathMNIST/CIFAR-10).
        stop: ``"last_correct"`` (published ``stop=3``), ``"midpoint"`` (``stop=1``) or ``"final"`` (no bisection).
        bracket: bisection segment, ``"clean"`` (``x`` to the final iterate, published) or ``"iterates"``
            (last-correct to first-wrong iterate).
        refine: boundary search on the segment: ``"bisection"`` (published) or ``"illinois"`` (modified regula
            falsi on ``task.margin``; 4 steps locate the boundary at least as precisely as 10 halvings and cut the
            method's cost over SAT roughly in half, see ``benchmarks/bench_methods.py``).
        refine_steps: bisection halvings (default 10) or Illinois steps (default 4).
        random_start: ``"sphere"`` (published quirk Q1) or ``"ball"``.
        train_mode_attack: attack and bisect with batch norm in train mode (published).
        margin_stable_epochs: N for the ``margin_stable`` signal (0: off).
        report_eps: ε values of ``margin_acc@ε`` (None: fractions of ``e_max``).
        predicate: what "correct" means: ``"task"`` (``task.correct``) or ``"loss"`` (per-sample loss ≤ τ,
            AMAT's loss-defined margin); see :func:`~medrobust.methods.loss_threshold.resolve_predicate`.
        tau: threshold: replaces the task's (Dice/error) with ``"task"``; the loss threshold with ``"loss"``.
        clean_run: ``"loss"`` without ``tau``: a standard run whose per-sample training losses give
            ``τ = Huber mean + z·Huber scale``.
        z: multiples of the robust scale (AMAT: 1, 2 or 3).
        adv_mean: adversarial term ``Σ_A L/B`` (``"batch"``, IMA) or the mean over ``A`` (``"adversarial"``, AMAT).
        only_grow: margins never decrease (AMAT, landmarks).

    Shape:
        - batch.x: ``(B, C, *spatial)`` in [0, 1]; batch.index: ``(B,)`` indices into the training set.
    """

    name = "ima"

    def __init__(
        self,
        norm: Norm = "l2",
        delta: float = 0.03,
        e_max: float = 3.0,
        alpha: float = 4.0,
        steps: int = 20,
        beta: float = 0.5,
        attack_loss: AttackLoss = "ce",
        stop: Stop = "last_correct",
        bracket: Bracket = "clean",
        refine: Refine = "bisection",
        refine_steps: int | None = None,
        random_start: Start = "sphere",
        train_mode_attack: bool = True,
        margin_stable_epochs: int = 0,
        report_eps: list[float] | None = None,
        predicate: str = "task",
        tau: float | None = None,
        clean_run: str | None = None,
        z: float = 1.0,
        adv_mean: str = "batch",
        only_grow: bool = False,
    ) -> None:
        check_norm(norm)
        choice(self.name, "predicate", predicate, PREDICATES)
        choice(self.name, "adv_mean", adv_mean, ADV_MEANS)
        self.predicate, self.tau, self.clean_run, self.z = predicate, tau, clean_run, float(z)
        self.adv_mean, self.only_grow = adv_mean, bool(only_grow)
        self.task: Task | None = None
        for option, value in (("delta", delta), ("alpha", alpha), ("steps", steps)):
            positive(self.name, option, value)
        positive(self.name, "e_max", e_max, allow_inf=True)
        choice(self.name, "refine", refine, REFINES)
        refine_steps = (10 if refine == "bisection" else 4) if refine_steps is None else refine_steps
        positive(self.name, "refine_steps", refine_steps, allow_zero=True)
        positive(self.name, "margin_stable_epochs", margin_stable_epochs, allow_zero=True)
        fraction(self.name, "beta", beta)
        choice(self.name, "attack_loss", attack_loss, ATTACK_LOSSES)
        choice(self.name, "stop", stop, STOPS)
        choice(self.name, "bracket", bracket, BRACKETS)
        choice(self.name, "random_start", random_start, STARTS)
        self.norm, self.delta, self.e_max = norm, float(delta), float(e_max)
        self.alpha, self.steps, self.beta = float(alpha), int(steps), float(beta)
        self.attack_loss, self.stop, self.bracket = attack_loss, stop, bracket
        self.refine, self.refine_steps = refine, int(refine_steps)
        self.random_start, self.train_mode_attack = random_start, train_mode_attack
        self.margin_stable_epochs = int(margin_stable_epochs)
        fractions = [f * self.e_max for f in REPORT_FRACTIONS] if math.isfinite(self.e_max) else [0.0]
        self.report_eps = [float(e) for e in report_eps] if report_eps is not None else fractions
        self.margins: Margins | None = None
        self.epochs_without_expansion = 0

    def setup(self, model: nn.Module, train_size: int, task: Task) -> None:
        device = model_device(model)
        self.margins = Margins(train_size, self.delta, device)
        self.epochs_without_expansion = 0
        self.task = resolve_predicate(task, self.predicate, self.tau, self.clean_run, self.z)

    def _state(self) -> Margins:
        if self.margins is None:
            raise RuntimeError("IMA.setup(model, train_size, task) must run before training")  # programming error
        return self.margins

    def perturb(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        eps: Tensor,
        clean_ok: Tensor,
        task: Task,
        generator: torch.Generator | None,
        clean_margin: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Adversarial points ``(B, *)`` (detached) and the bool ``(B,)`` flipped mask for radii ``eps`` ``(B,)``."""
        with model_mode(model, self.train_mode_attack):
            tracked = tracked_pgd(
                model,
                x,
                y,
                task=task,
                eps=eps,
                norm=self.norm,
                steps=self.steps,
                step_size=eps * (self.alpha / self.steps),
                loss=self.attack_loss,
                start=self.random_start,
                generator=generator,
                track_margins=self.refine == "illinois" and self.stop != "final",
            )
            flipped = tracked.flips > 0
            x_adv = adversarial_point(
                model,
                x,
                y,
                tracked,
                clean_ok & flipped,
                task=task,
                stop=self.stop,
                bracket=self.bracket,
                steps=self.refine_steps,
                train_mode=self.train_mode_attack,
                refine=self.refine,
                clean_margin=clean_margin,
            )
        return x_adv.detach(), flipped

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        margins, task = self._state(), self.task or ctx.task
        x, y = batch.x, batch.target
        clean = model(x)
        clean_ok = task.correct(clean.detach(), y)
        eps = margins.E[batch.index].to(x.dtype)
        clean_margin = task.margin(clean.detach(), y).float() if self.refine == "illinois" else None
        x_adv, flipped = self.perturb(model, x, y, eps, clean_ok, task, ctx.generator, clean_margin)
        use = clean_ok & flipped
        loss = (1 - self.beta) * task.loss(clean, y).mean()
        ids = use.nonzero().squeeze(1)
        if ids.numel():
            count = len(x) if self.adv_mean == "batch" else ids.numel()
            loss = loss + self.beta * task.loss(model(x_adv[ids]), y[ids]).sum() / count
        margins.record(batch.index, clean_ok, flipped, norm_of(x_adv - x.detach(), self.norm))
        flip_rate, adv_rate = torch.stack([flipped.float().mean(), use.float().mean()]).tolist()
        return StepOutput(loss, clean.detach(), {"flipped_fraction": flip_rate, "adv_fraction": adv_rate})

    def on_epoch_end(self, ctx: EpochContext) -> dict[str, float]:
        margins = self._state()
        seen, ok = margins.seen, margins.clean_ok
        expanded, refined = margins.update(self.delta, self.e_max, self.only_grow)
        n_seen = max(int(seen.sum()), 1)
        self.epochs_without_expansion = 0 if bool(expanded.any()) else self.epochs_without_expansion + 1
        logs = margin_logs(margins.E[seen], ok[seen], self.report_eps)
        logs.update(
            margin_expanded=int(expanded.sum()) / n_seen,
            margin_refined=int(refined.sum()) / n_seen,
            margin_epochs_without_expansion=float(self.epochs_without_expansion),
        )
        if self.margin_stable_epochs:
            logs["margin_stable"] = float(self.epochs_without_expansion >= self.margin_stable_epochs)
        if ctx.run_dir is not None:
            path = Path(ctx.run_dir) / f"margins_epoch{ctx.epoch:03d}.png"
            save_margin_figure(path, margins.E[seen], ok[seen], e_max=self.e_max, epoch=ctx.epoch, norm=self.norm)
        margins.begin_epoch()
        return logs

    def state_dict(self) -> dict[str, Any]:
        margins = self._state()
        return {"margins": margins.E.detach().cpu().clone(), "epochs_without_expansion": self.epochs_without_expansion}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = torch.as_tensor(state["margins"])
        if self.margins is None:
            self.margins = Margins(saved.numel(), self.delta)
        if saved.shape != self.margins.E.shape:
            raise DataError(
                f"the checkpoint holds margins for {saved.numel()} samples but the training set has "
                f"{self.margins.E.numel()}; resume with the same training data"
            )
        self.margins.E = saved.to(self.margins.E.device, self.margins.E.dtype)
        self.margins.begin_epoch()
        self.epochs_without_expansion = int(state.get("epochs_without_expansion", 0))
