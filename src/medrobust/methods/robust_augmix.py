"""RobustAugMix (Martinez-Martinez & Brown, "RobustAugMix: Joint Optimization of Natural and Adversarial
Robustness", NeurIPS ML Safety Workshop 2022; Martinez-Martinez & Nabavi's COVID-19 chest X-ray study):
AugMix's Jensen–Shannon consistency with the second AugMix view replaced by a PGD example of the clean view."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medrobust.attacks.pgd import PGD
from medrobust.geometry import Norm, check_norm
from medrobust.methods._common import positive
from medrobust.methods.augmix import AugMix, consistency_loss
from medrobust.methods.base import Batch, StepContext, StepOutput


class RobustAugMix(AugMix):
    """Loss ``L(f(x)) + λ·JS(p(x), p(AugMix(x)), p(PGD(x)))`` in one concatenated forward (METHODS §1.8).

    PGD attacks the task loss of the clean view at radius ``eps``, with the model in eval mode by default (it
    never touches parameter gradients; the adversarial view is detached). The defaults follow the COVID-19
    chest X-ray study's adversarial training (L∞ ε = 4/255, 7 steps of 2.5·ε/7); the RobustAugMix repository
    uses L2 ε = 1.0 with a Gaussian start projected into the ball, whereas this PGD starts uniformly in the
    ball. Logs ``jsd`` and ``adv_accuracy`` (training samples the attack did not fool).

    Args:
        eps: PGD radius.
        norm: ``"linf"`` or ``"l2"``.
        steps: PGD steps (7).
        rel_step: step length ``rel_step·eps/steps`` (2.5).
        random_start: start PGD at a random point of the ball.
        train_mode: run the attack with the model in train mode.
        **augmix: the AugMix options (``severity``, ``width``, ``depth``, ``alpha``, ``all_ops``, ``jsd_weight``).

    Shape:
        - batch.x: ``(B, C, H, W)`` in [0, 1], C = 1 or 3.
    """

    name = "robust_augmix"

    def __init__(
        self,
        eps: float = 4 / 255,
        norm: Norm = "linf",
        steps: int = 7,
        rel_step: float = 2.5,
        random_start: bool = True,
        train_mode: bool = False,
        severity: float = 3.0,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = False,
        jsd_weight: float = 12.0,
    ) -> None:
        super().__init__(severity, width, depth, alpha, all_ops, jsd_weight, jsd=True)
        check_norm(norm)
        positive(self.name, "eps", eps)
        self.eps = float(eps)
        self.attack = PGD(norm=norm, steps=steps, rel_step=rel_step, random_start=random_start, train_mode=train_mode)

    def perturb(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """PGD inputs ``(B, *)`` (detached) and the bool ``(B,)`` mask of samples the attack fooled."""
        result = self.attack(model, batch.x, batch.target, task=ctx.task, eps=self.eps, generator=ctx.generator)
        return result.x_adv.detach(), result.fooled

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        x = batch.x
        with ctx.attack_precision():
            x_adv, fooled = self.perturb(model, batch, ctx)
        outputs = model(torch.cat([x, self.augment(x, ctx.generator), x_adv]))
        loss, js = consistency_loss(ctx.task, outputs, batch.target, 3, self.jsd_weight)
        logs = {"jsd": float(js), "adv_accuracy": 1.0 - float(fooled.float().mean())}
        return StepOutput(loss, outputs[: len(x)].detach(), logs)
