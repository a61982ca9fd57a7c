"""IMA: Increasing-Margin Adversarial training (Ma & Liang, "Increasing-Margin Adversarial (IMA) training to
improve adversarial robustness of neural networks", CMPB 2023, arXiv 2005.09147; METHODS §1.5).

Every training sample ``i`` owns a margin ``E[i]``: the radius at which it is attacked. Samples that survive the
attack get a larger margin next epoch (``E += δ``); samples that flip are pulled onto the decision boundary by
bisection, trained on there, and their margin moves towards the boundary distance. "Correct" is ``task.correct``
and the adversarial point is a :func:`~medrobust.methods.margin_attack.adversarial_point` choice, so AMAT
(arXiv 2206.01736) is the same algorithm with another predicate and ``stop="final"``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from medrobust.errors import DataError
from medrobust.geometry import Draws, Norm, SampleDraws, check_norm
from medrobust.geometry import norm as norm_of
from medrobust.methods._common import choice, fraction, positive
from medrobust.methods.base import Batch, EpochContext, StepContext, StepOutput, TrainingMethod
from medrobust.methods.loss_threshold import PREDICATES, resolve_predicate
from medrobust.methods.margin_attack import (
    ATTACK_LOSSES,
    BRACKETS,
    FAR_ENDS,
    REFINES,
    SEARCH_BATCHES,
    STARTS,
    STOPS,
    AttackLoss,
    Bracket,
    FarEnd,
    Refine,
    SearchBatch,
    Start,
    Stop,
    adversarial_point,
    tracked_pgd,
)
from medrobust.methods.margin_report import margin_logs, save_margin_arrays, save_margin_figure
from medrobust.methods.margins import Margins
from medrobust.runtime import model_device, model_mode
from medrobust.tasks.base import Task

REPORT_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
ADV_MEANS = ("batch", "adversarial")
ADV_SAMPLES = ("flipped", "correct")
CLEAN_PREDICATES = ("strict", "any")
START_RADII = ("margin", "lagged")
REFINE_FLOORS = ("zero", "delta")
LANDMARK_ALPHA = 5.0  # amat_conf d0aa94e landmark_detection/train_AMAT_2zscore.py L172 (alpha = 5)
DETECTION_ALPHA = 5.0  # amat_conf d0aa94e yolov5/train_AMAT.py L607 (alpha = 5)


@dataclass(frozen=True)
class MarginAttack:
    """The PGD that probes each sample at its own margin ``E[i]``.

    Args:
        norm: ``"l2"`` (published) or ``"linf"``.
        alpha: step length ``alpha·E[i]/steps`` (4: MedMNIST_CNN_IMA.py L209); None: the task's published value,
            5 for landmarks (amat_conf ``landmark_detection/train_AMAT_2zscore.py`` L172) and detection
            (``yolov5/train_AMAT.py`` L607), 4 otherwise.
        steps: PGD steps (20).
        loss: ``"ce"`` (summed task loss) or ``"margin"`` (soft logit margin, PathMNIST/CIFAR-10).
        random_start: ``"sphere"`` (published quirk Q1) or ``"ball"``. In training each sample's start is drawn
            from a generator keyed by (run seed, epoch, dataset index) (:class:`~medrobust.geometry.SampleDraws`), so
            it is the same on one process or under ``torchrun`` whichever rank trains the sample.
        train_mode: attack and search the boundary with batch norm in train mode (published).
        start_radius: radius of the random start: ``"margin"``, ``E`` (IMA: ``get_noise_init`` takes
            ``max(E, max(E − δ, 1e-3))``, RobustDNN_PGD.py L242-262 with MedMNIST_CNN_IMA.py L87) or ``"lagged"``,
            ``min(max(E − δ, δ), E)`` (AMAT: nnUNetTrainerV2.py L450 and amat_conf ``RobustDNN_PGD.py`` L235-244).
    """

    norm: Norm = "l2"
    alpha: float | None = 4.0
    steps: int = 20
    loss: AttackLoss = "ce"
    random_start: Start = "sphere"
    train_mode: bool = True
    start_radius: str = "margin"

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.alpha is not None:
            positive("ima", "alpha", self.alpha)
        choice("ima", "start_radius", self.start_radius, START_RADII)
        positive("ima", "steps", self.steps)
        choice("ima", "attack_loss", self.loss, ATTACK_LOSSES)
        choice("ima", "random_start", self.random_start, STARTS)


@dataclass(frozen=True)
class BoundarySearch:
    """Where a flipped sample trains: the boundary point on a segment, or the final PGD iterate.

    Args:
        stop: ``"last_correct"`` (published ``stop=3``), ``"midpoint"`` (``stop=1``) or ``"final"`` (no search).
        bracket: segment, ``"clean"`` (``x`` to the final iterate, published) or ``"iterates"`` (last-correct to
            first-wrong iterate).
        refine: ``"bisection"`` (published) or ``"illinois"`` (modified regula falsi on ``task.margin``; 4 steps
            locate the boundary at least as precisely as 10 halvings, see ``benchmarks/bench_methods.py``).
        steps: halvings (default 10) or Illinois steps (default 4).
        far_end: with ``bracket="clean"``, the far end of the segment where the final iterate is classified
            correctly again after a flip: the final iterate (``"final"``, official, RobustDNN_IMA_bn.py L107-108)
            or the first misclassified iterate (``"first_wrong"``, medrobust before issue 12).
        batch: ``"full"`` (official): search and forward the adversarial points of the whole batch, as
            RobustDNN_IMA_bn.py L249-260 and L444 do, so train-mode batch norm sees the whole batch; ``"subset"``:
            only the clean-correct flipped samples (faster; their batch statistics are the subset's).
    """

    stop: Stop = "last_correct"
    bracket: Bracket = "clean"
    refine: Refine = "bisection"
    steps: int | None = None
    far_end: FarEnd = "final"
    batch: SearchBatch = "full"

    def __post_init__(self) -> None:
        choice("ima", "stop", self.stop, STOPS)
        choice("ima", "far_end", self.far_end, FAR_ENDS)
        choice("ima", "search_batch", self.batch, SEARCH_BATCHES)
        choice("ima", "bracket", self.bracket, BRACKETS)
        choice("ima", "refine", self.refine, REFINES)
        if self.steps is not None:
            positive("ima", "refine_steps", self.steps, allow_zero=True)

    @property
    def n_steps(self) -> int:
        """The number of search steps (the default of ``refine`` when ``steps`` is None)."""
        return (10 if self.refine == "bisection" else 4) if self.steps is None else int(self.steps)


@dataclass(frozen=True)
class MarginSchedule:
    """How margins start, grow and stop.

    Args:
        delta: expansion step δ and initial margin (PathMNIST 0.03; COVID-CT 2.0).
        e_max: largest margin (PathMNIST 3.0; COVID-CT 12; ∞ allowed).
        only_grow: margins never decrease (AMAT, landmarks).
        stable_epochs: N for the ``margin_stable`` stop signal (0: off).
        refine_floor: a refined margin is at least ``"zero"`` (IMA) or ``"delta"`` (AMAT's detection rule,
            ``E_new = max((E_new + ‖x_adv − x‖)/2, δ)``: amat_conf ``yolov5/train_AMAT.py`` L706); None: the task's
            published rule (``"delta"`` for detection, ``"zero"`` otherwise).
    """

    delta: float = 0.03
    e_max: float = 3.0
    only_grow: bool = False
    stable_epochs: int = 0
    refine_floor: str | None = "zero"

    def __post_init__(self) -> None:
        if self.refine_floor is not None:
            choice("ima", "refine_floor", self.refine_floor, REFINE_FLOORS)
        positive("ima", "delta", self.delta)
        positive("ima", "e_max", self.e_max, allow_inf=True)
        positive("ima", "margin_stable_epochs", self.stable_epochs, allow_zero=True)


class IMA(TrainingMethod):
    """Increasing-Margin Adversarial training (METHODS §1.5), and AMAT as a preset of it (:func:`amat`).

    Per batch: a clean train-mode forward; PGD on the whole batch with radius ``E[i]``, ``steps`` steps of
    ``alpha·E[i]/steps`` (L2-normalised gradient, sign for L∞), tracking each sample's flips; bisection
    (``refine_steps``, no gradient) onto the boundary; loss ``(1 − β)·mean L(x) + β·Σ_{i∈A} L(x_adv_i)/B`` with
    ``A`` = clean-correct and flipped, the adversarial points forwarded in train mode;
    ``E_new[i] = (E_new[i] + ‖x_adv_i − x_i‖)/2`` for clean-correct flipped ``i``. Epoch end: see
    :meth:`Margins.update`. Margins are checkpointed (exact resume).

    The attack and the boundary search always run in fp32 with autocast disabled, whatever the training loop's
    mixed-precision setting (autocast covers only the update's forward and backward): at PathMNIST's δ = 0.03
    (L2, 3×28×28) a bf16 cast loses most of the perturbation and a bisection to ``E/1024`` is impossible.

    Logs per epoch ``margin_q10/q50/q90/mean``, ``margin_expanded`` (fraction of the samples seen whose margin
    grew; samples held at ``e_max`` do not count), ``margin_refined``, ``margin_acc@ε`` (training accuracy
    estimated from the margins) at ``report_eps`` (default ``e_max·(0, ¼, ½, ¾, 1)``),
    ``margin_epochs_without_expansion`` and, with ``stable_epochs = N > 0``, ``margin_stable`` (1 once no
    margin grew for N epochs: a stop signal); writes ``margins_epoch{N:03d}.png`` and ``.npz`` (the margins) into
    the run folder.

    The defaults follow the official code (SarielMa/Increasing-Margin-Adversarial-Training at c3f6df0); the
    earlier medrobust behaviour stays available as named options: ``search.batch="subset"`` (bisect and forward
    only the clean-correct flipped samples) and ``search.far_end="first_wrong"``.

    Args:
        attack: the PGD at each sample's margin (:class:`MarginAttack`).
        search: the boundary search (:class:`BoundarySearch`).
        schedule: margin start, growth and limits (:class:`MarginSchedule`).
        beta: weight of the adversarial term (0.5).
        predicate: what "correct" means for the margins: ``"task"`` (``task.correct``) or ``"loss"`` (per-sample
            loss ≤ ``tau``, AMAT's loss-defined margin; see
            :func:`~medrobust.methods.loss_threshold.resolve_predicate`).
        tau: threshold: replaces the task's (Dice/error) with ``"task"``; the loss threshold with ``"loss"`` (a
            clean run's losses give it where runs are assembled: ``training.runs``, option ``clean_run``).
        adv_mean: adversarial term ``Σ_A L/B`` (``"batch"``, IMA) or the mean over ``A`` (``"adversarial"``, AMAT).
        adv_samples: ``A``: the clean-correct samples that flipped (``"flipped"``, IMA ``model_Xn_advc_p=1``,
            MedMNIST_CNN_IMA.py L217) or every clean-correct sample at its final PGD point (``"correct"``, AMAT
            ``model_Xn_advc_p=0``: RobustDNN_AMAT_claregseg.py L437-445).
        clean_predicate: "clean-correct" for ``A`` and the margins' bookkeeping: the margin predicate
            (``"strict"``, IMA) or every sample (``"any"``: AMAT's clean predicate ``Dice ≥ 0``,
            nnUNetTrainerV2.py L336; the strict τ then decides only the flips, L360).
        clean_tau: a threshold for a clean predicate of its own (same kind as ``predicate``; e.g. a loose landmark
            error, amat_conf ``train_AMAT_2zscore.py`` L47-51 uses ``de ≤ 1.0``); overrides ``clean_predicate``.
        report_eps: ε values of ``margin_acc@ε`` (None: fractions of ``e_max``).
        name: the method's name in messages (``"ima"`` or ``"amat"``).

    Shape:
        - batch.x: ``(B, C, *spatial)`` in [0, 1]; batch.index: ``(B,)`` indices into the training set.

    Examples:
        >>> ima = IMA(schedule=MarginSchedule(delta=0.05, e_max=0.5), attack=MarginAttack(steps=7))
        >>> ima.attack.alpha, ima.search.n_steps, ima.search.batch, ima.search.far_end
        (4.0, 10, 'full', 'final')
        >>> IMA.from_options(delta=0.05, e_max=0.5, steps=7).attack == ima.attack
        True
    """

    def __init__(
        self,
        attack: MarginAttack = MarginAttack(),
        search: BoundarySearch = BoundarySearch(),
        schedule: MarginSchedule = MarginSchedule(),
        *,
        beta: float = 0.5,
        predicate: str = "task",
        tau: float | None = None,
        adv_mean: str = "batch",
        adv_samples: str = "flipped",
        clean_predicate: str = "strict",
        clean_tau: float | None = None,
        report_eps: list[float] | None = None,
        name: str = "ima",
    ) -> None:
        self.name = name
        choice(name, "predicate", predicate, PREDICATES)
        choice(name, "adv_mean", adv_mean, ADV_MEANS)
        choice(name, "adv_samples", adv_samples, ADV_SAMPLES)
        choice(name, "clean_predicate", clean_predicate, CLEAN_PREDICATES)
        fraction(name, "beta", beta)
        self.attack, self.search, self.schedule = attack, search, schedule
        self.beta, self.predicate, self.tau, self.adv_mean = float(beta), predicate, tau, adv_mean
        self.adv_samples, self.clean_predicate, self.clean_tau = adv_samples, clean_predicate, clean_tau
        e_max = schedule.e_max
        fractions = [f * e_max for f in REPORT_FRACTIONS] if math.isfinite(e_max) else [0.0]
        self.report_eps = [float(e) for e in report_eps] if report_eps is not None else fractions
        self.task: Task | None = None
        self.clean_task: Task | None = None
        self.margins: Margins | None = None
        self.epochs_without_expansion = 0

    @classmethod
    def from_options(
        cls,
        norm: Norm = "l2",
        delta: float = 0.03,
        e_max: float = 3.0,
        alpha: float | None = 4.0,
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
        adv_mean: str = "batch",
        only_grow: bool = False,
        search_batch: SearchBatch = "full",
        far_end: FarEnd = "final",
        start_radius: str = "margin",
        adv_samples: str = "flipped",
        clean_predicate: str = "strict",
        clean_tau: float | None = None,
        refine_floor: str | None = "zero",
        name: str = "ima",
    ) -> IMA:
        """IMA from flat options (a config file's ``method.options``); defaults are the published ones."""
        return cls(
            MarginAttack(norm, alpha, steps, attack_loss, random_start, train_mode_attack, start_radius),
            BoundarySearch(stop, bracket, refine, refine_steps, far_end, search_batch),
            MarginSchedule(delta, e_max, only_grow, margin_stable_epochs, refine_floor),
            beta=beta, predicate=predicate, tau=tau, adv_mean=adv_mean, adv_samples=adv_samples,
            clean_predicate=clean_predicate, clean_tau=clean_tau, report_eps=report_eps, name=name,
        )  # fmt: skip

    def setup(self, model: nn.Module, train_size: int, task: Task) -> None:
        device = model_device(model)
        self.margins = Margins(train_size, self.schedule.delta, device)
        self.epochs_without_expansion = 0
        self.task = resolve_predicate(task, self.predicate, self.tau)
        if self.clean_tau is not None:
            self.clean_task = resolve_predicate(task, self.predicate, self.clean_tau)
        else:
            self.clean_task = None if self.clean_predicate == "any" else self.task
        if self.attack.alpha is None:
            alpha = {"landmark": LANDMARK_ALPHA, "detection": DETECTION_ALPHA}.get(task.kind, 4.0)
            self.attack = dataclasses.replace(self.attack, alpha=alpha)
        if self.schedule.refine_floor is None:
            floor = "delta" if task.kind == "detection" else "zero"
            self.schedule = dataclasses.replace(self.schedule, refine_floor=floor)

    def _state(self) -> Margins:
        if self.margins is None or self.task is None:
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
        generator: Draws,
        clean_margin: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Adversarial points ``(B, *)`` (detached, fp32) and the bool ``(B,)`` flipped mask for radii ``eps``.

        Runs in fp32 with autocast disabled on ``x``'s device type, whatever the caller's autocast state.
        ``generator`` gives the random starts (a generator for the batch, or per-sample :class:`SampleDraws`).

        Shape:
            - x: ``(B, *)``; eps, clean_ok, clean_margin: ``(B,)``.
        """
        attack, search = self.attack, self.search
        if attack.alpha is None:
            raise RuntimeError("IMA.setup(model, train_size, task) must run before perturb")  # programming error
        alpha = attack.alpha
        x, eps = x.detach().float(), eps.float()
        start_eps = None
        if attack.start_radius == "lagged":
            delta = self.schedule.delta
            start_eps = torch.minimum((eps - delta).clamp(min=delta), eps)
        with torch.autocast(x.device.type, enabled=False), model_mode(model, attack.train_mode):
            tracked = tracked_pgd(
                model,
                x,
                y,
                task=task,
                eps=eps,
                norm=attack.norm,
                steps=attack.steps,
                step_size=eps * (alpha / attack.steps),
                loss=attack.loss,
                start=attack.random_start,
                generator=generator,
                track_margins=search.refine == "illinois" and search.stop != "final",
                start_eps=start_eps,
            )
            flipped = tracked.flips > 0
            x_adv = adversarial_point(
                model,
                x,
                y,
                tracked,
                clean_ok & flipped,
                task=task,
                stop=search.stop,
                bracket=search.bracket,
                steps=search.n_steps,
                train_mode=attack.train_mode,
                refine=search.refine,
                clean_margin=clean_margin,
                far_end=search.far_end,
                batch=search.batch,
            )
        return x_adv.detach(), flipped

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        margins = self._state()
        task = self.task or ctx.task
        x, y = batch.x, batch.target
        clean = model(x)
        out = clean.detach().float()
        clean_loss = (1 - self.beta) * task.loss(clean, y).mean()
        if clean_loss.requires_grad and self.beta < 1:
            # the official code keeps this forward's graph alive through the attack; backpropagating the clean term
            # now gives the same gradient and frees the graph (less memory; on CPU, faster attack passes)
            clean_loss.backward()
        clean_loss = clean_loss.detach()
        del clean
        clean_ok = torch.ones(len(x), dtype=torch.bool, device=x.device)
        if self.clean_task is not None:
            clean_ok = self.clean_task.correct(out, y)
        eps = margins.E[batch.index].float()
        clean_margin = task.margin(out, y).float() if self.search.refine == "illinois" else None
        starts = SampleDraws.of(ctx.seed, ctx.epoch, batch.index)  # a sample's start: the same on any rank
        x_adv, flipped = self.perturb(model, x, y, eps, clean_ok, task, starts, clean_margin)
        use = clean_ok & flipped if self.adv_samples == "flipped" else clean_ok
        ids = use.nonzero().squeeze(1)
        count = len(x) if self.adv_mean == "batch" else max(ids.numel(), 1)
        adv_loss = torch.zeros((), device=x.device)
        if self.search.batch == "full":
            # official: the whole batch's adversarial points are forwarded whenever a sample is clean-correct
            # (RobustDNN_IMA_bn.py L417-452), so train-mode batch norm sees the whole batch
            if self.beta > 0 and bool(clean_ok.any()):
                adv_out = model(x_adv.to(x.dtype))
                adv_loss = self.beta * task.loss(adv_out[ids], y[ids]).sum() / count
        elif ids.numel():
            adv_loss = self.beta * task.loss(model(x_adv[ids].to(x.dtype)), y[ids]).sum() / count
        margins.record(batch.index, clean_ok, flipped, norm_of(x_adv - x.detach().float(), self.attack.norm))
        flip_rate, adv_rate = torch.stack([flipped.float().mean(), use.float().mean()]).tolist()
        logs = {"flipped_fraction": flip_rate, "adv_fraction": adv_rate}
        return StepOutput(clean_loss + adv_loss.detach(), out, logs, pending=adv_loss)

    def on_epoch_end(self, ctx: EpochContext) -> dict[str, float]:
        margins = self._state()
        seen, ok = margins.seen, margins.clean_ok
        sched = self.schedule
        floor = sched.delta if sched.refine_floor == "delta" else 0.0
        expanded, refined = margins.update(sched.delta, sched.e_max, sched.only_grow, floor)
        n_seen = max(int(seen.sum()), 1)
        self.epochs_without_expansion = 0 if bool(expanded.any()) else self.epochs_without_expansion + 1
        logs = margin_logs(margins.E[seen], ok[seen], self.report_eps)
        logs.update(
            margin_expanded=int(expanded.sum()) / n_seen,
            margin_refined=int(refined.sum()) / n_seen,
            margin_epochs_without_expansion=float(self.epochs_without_expansion),
        )
        if sched.stable_epochs:
            logs["margin_stable"] = float(self.epochs_without_expansion >= sched.stable_epochs)
        if ctx.run_dir is not None:
            path = Path(ctx.run_dir) / f"margins_epoch{ctx.epoch:03d}.png"
            save_margin_figure(
                path, margins.E[seen], ok[seen], e_max=sched.e_max, epoch=ctx.epoch, norm=self.attack.norm
            )
            save_margin_arrays(path.with_suffix(".npz"), margins.E[seen], ok[seen])
        margins.begin_epoch()
        return logs

    def state_dict(self) -> dict[str, Any]:
        margins = self._state()
        return {"margins": margins.E.detach().cpu().clone(), "epochs_without_expansion": self.epochs_without_expansion}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = torch.as_tensor(state["margins"])
        if self.margins is None:
            self.margins = Margins(saved.numel(), self.schedule.delta)
        if saved.shape != self.margins.E.shape:
            raise DataError(
                f"the checkpoint holds margins for {saved.numel()} samples but the training set has "
                f"{self.margins.E.numel()}; resume with the same training data"
            )
        self.margins.E = saved.to(self.margins.E.device, self.margins.E.dtype)
        self.margins.begin_epoch()
        self.epochs_without_expansion = int(state.get("epochs_without_expansion", 0))
