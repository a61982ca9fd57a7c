"""TRADES (Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medrobust.attacks.ascent import ProjectedStep, gradient_ascent
from medrobust.geometry import Norm, check_norm, per_sample_eps, project
from medrobust.methods._common import positive
from medrobust.methods.base import Batch, StepContext, StepOutput, TrainingMethod
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task
from medrobust.tasks.classification import ClassificationTask


def log_distribution(task: Task, output: Tensor) -> Tensor:
    """Log class probabilities of ``task.probabilities``, computed in log space.

    Shape:
        - output: model output ``(N, K)``, or ``(N, 1)``/``(N,)`` for one-logit binary, ``(N, L)`` multi-label.
        - returns: ``(N, K)``; ``(N, 2)`` for one-logit binary; ``(N, L, 2)`` for multi-label (one Bernoulli
          per label).
    """
    z = output.float()
    if isinstance(task, ClassificationTask) and (task.single_logit or task.kind == "multilabel"):
        z = z.reshape(z.shape[0]) if task.single_logit else z
        return torch.stack([F.logsigmoid(-z), F.logsigmoid(z)], dim=-1)
    return F.log_softmax(z, dim=1)


def kl_divergence(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Per-sample ``KL(p ‖ q)`` ``(N,)`` from log-distributions over the last axis (summed over the others)."""
    return (log_p.exp() * (log_p - log_q)).flatten(1).sum(dim=1)


class TRADES(TrainingMethod):
    """Loss ``mean L(f(x), y) + β·mean KL(p(x) ‖ p(x_adv))`` (METHODS §1.4).

    ``x_adv`` maximises the KL term by PGD from ``x + 0.001·N(0, I)`` (``steps`` steps of length
    ``rel_step·eps/steps``, sign or L2-normalised gradient, projection onto the ε-ball ∩ [0, 1]) with the clean
    distribution held fixed and the model in eval mode (as in the official code; ``train_mode`` to change). The
    training loss uses train-mode forwards of ``x`` and ``x_adv`` with gradients through both distributions.
    Class distributions come from the task, so one-logit binary (``[1 − σ(z), σ(z)]``) and multi-label tasks
    (sum of per-label Bernoulli KLs) work too.

    Args:
        beta: weight of the KL term (6).
        eps: radius (8/255 ≈ 0.031 L∞, the paper's CIFAR-10 setting).
        norm: ``"linf"`` or ``"l2"``.
        steps: PGD steps (10).
        rel_step: step length ``rel_step·eps/steps`` (2.25: 0.007 at ε = 0.031, as published).
        train_mode: run the attack with the model in train mode.

    Shape:
        - batch.x: ``(B, C, *spatial)`` in [0, 1].
    """

    name = "trades"

    def __init__(
        self,
        beta: float = 6.0,
        eps: float = 8 / 255,
        norm: Norm = "linf",
        steps: int = 10,
        rel_step: float = 2.25,
        train_mode: bool = False,
    ) -> None:
        check_norm(norm)
        positive(self.name, "beta", beta, allow_zero=True)
        positive(self.name, "eps", eps)
        positive(self.name, "steps", steps)
        positive(self.name, "rel_step", rel_step)
        self.beta, self.eps, self.norm, self.steps = float(beta), float(eps), norm, int(steps)
        self.rel_step, self.train_mode = float(rel_step), train_mode

    def perturb(self, model: nn.Module, batch: Batch, ctx: StepContext) -> Tensor:
        """The detached KL-maximising point ``(B, *)`` of each sample."""
        x = batch.x.detach()
        eps = per_sample_eps(self.eps, x)
        rule = ProjectedStep.around(x, eps, eps * (self.rel_step / self.steps), self.norm)
        noise = torch.randn(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype)
        start = project(x + 0.001 * noise, x, eps, self.norm, rule.bounds)
        task = ctx.task
        with model_mode(model, self.train_mode):
            with torch.no_grad():
                log_clean = log_distribution(task, model(x))
            run = gradient_ascent(
                model,
                start,
                log_clean,
                lambda out, clean: kl_divergence(clean, log_distribution(task, out)),
                rule,
                steps=self.steps,
                score_final=False,
            )
        return run.x

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        with ctx.attack_precision():
            x_adv = self.perturb(model, batch, ctx)
        clean, adv = model(batch.x), model(x_adv)
        kl = kl_divergence(log_distribution(ctx.task, clean), log_distribution(ctx.task, adv)).mean()
        loss = ctx.task.loss(clean, batch.target).mean() + self.beta * kl
        adv_ok = ctx.task.correct(adv.detach(), batch.target).float().mean()
        kl_value, adv_accuracy = torch.stack([kl.detach(), adv_ok]).tolist()
        return StepOutput(loss, clean.detach(), {"trades_kl": kl_value, "adv_accuracy": adv_accuracy})
