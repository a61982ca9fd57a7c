"""SAT: PGD adversarial training at a fixed radius (Madry et al., "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018), optionally mixed with the clean loss."""

from __future__ import annotations

from torch import Tensor, nn

from medrobust.attacks.pgd import PGD
from medrobust.geometry import Norm, check_norm
from medrobust.methods._common import fraction, positive
from medrobust.methods.base import Batch, StepContext, StepOutput, TrainingMethod


class PGDAdversarialTraining(TrainingMethod):
    """Loss ``(1 − w)·L(x) + w·L(x_adv)`` with ``x_adv`` from PGD at radius ``eps`` (METHODS §1.2).

    The attack runs in eval mode by default (``train_mode=True`` keeps batch norm in train mode) and never
    touches parameter gradients; ``x_adv`` is detached, so the update is the gradient of the loss at ``x_adv``.
    With ``adv_weight = 1`` no clean forward is run (so the epoch log has no clean training accuracy). Logs
    ``adv_accuracy``: the fraction of training samples the attack did not fool.

    Args:
        eps: attack radius (default 4/255 L∞, Martinez-Martinez & Nabavi's COVID chest X-ray setting).
        norm: ``"linf"`` or ``"l2"``.
        steps: PGD steps (7).
        rel_step: step length ``rel_step·eps/steps`` (2.5).
        random_start: start uniformly in the ball.
        adv_weight: ``w``; 1 trains on adversarial examples only.
        train_mode: run the attack with the model in train mode.

    Shape:
        - batch.x: ``(B, C, *spatial)`` in [0, 1].
    """

    name = "pgd_at"

    def __init__(
        self,
        eps: float = 4 / 255,
        norm: Norm = "linf",
        steps: int = 7,
        rel_step: float = 2.5,
        random_start: bool = True,
        adv_weight: float = 1.0,
        train_mode: bool = False,
    ) -> None:
        check_norm(norm)
        positive(self.name, "eps", eps)
        fraction(self.name, "adv_weight", adv_weight)
        self.eps = float(eps)
        self.adv_weight = float(adv_weight)
        self.attack = PGD(norm=norm, steps=steps, rel_step=rel_step, random_start=random_start, train_mode=train_mode)

    def perturb(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """Adversarial inputs ``(B, *)`` (detached) and the bool ``(B,)`` mask of samples the attack fooled."""
        result = self.attack(model, batch.x, batch.target, task=ctx.task, eps=self.eps, generator=ctx.generator)
        return result.x_adv.detach(), result.fooled

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        with ctx.attack_precision():
            x_adv, fooled = self.perturb(model, batch, ctx)
        w = self.adv_weight
        adv_loss = ctx.task.loss(model(x_adv), batch.target).mean()
        if w < 1:
            clean = model(batch.x)
            loss = (1 - w) * ctx.task.loss(clean, batch.target).mean() + w * adv_loss
            output = clean.detach()
        else:
            loss, output = adv_loss, None
        return StepOutput(loss, output, {"adv_accuracy": 1.0 - float(fooled.float().mean())})
