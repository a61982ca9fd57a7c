"""Fast adversarial training: FGSM from a random start (Wong, Rice & Kolter, "Fast is better than free:
Revisiting adversarial training", ICLR 2020)."""

from __future__ import annotations

from torch import Tensor, nn

from medrobust.attacks.fgsm import fgsm_point
from medrobust.geometry import Norm, check_norm, per_sample_eps
from medrobust.methods._common import positive
from medrobust.methods.base import Batch, StepContext, StepOutput, TrainingMethod
from medrobust.runtime import model_mode


class FastAdversarialTraining(TrainingMethod):
    """Train on ``x_adv = Π(x + δ₀ + rel_step·ε·sign(∇ₓL(x + δ₀)))``, ``δ₀`` uniform in the ε-ball (METHODS §1.9).

    One gradient with respect to the input per batch, about twice the cost of standard training. ``Π`` projects
    onto the ε-ball ∩ [0, 1]; L2 uses the normalised gradient and a uniform start in the L2 ball. As in Wong et
    al.'s code the attack runs in train mode by default. No clean forward is run; ``adv_accuracy`` is the training
    accuracy on ``x_adv``.

    Args:
        eps: radius (8/255 L∞, the paper's CIFAR-10 setting).
        norm: ``"linf"`` or ``"l2"``.
        rel_step: step length as a multiple of ``eps`` (1.25).
        train_mode: run the attack with the model in train mode.

    Shape:
        - batch.x: ``(B, C, *spatial)`` in [0, 1].
    """

    name = "fast_at"

    def __init__(
        self, eps: float = 8 / 255, norm: Norm = "linf", rel_step: float = 1.25, train_mode: bool = True
    ) -> None:
        check_norm(norm)
        positive(self.name, "eps", eps)
        positive(self.name, "rel_step", rel_step)
        self.eps, self.norm, self.rel_step, self.train_mode = float(eps), norm, float(rel_step), train_mode

    def perturb(self, model: nn.Module, batch: Batch, ctx: StepContext) -> Tensor:
        """The detached FGSM example ``(B, *)`` of each sample."""
        x = batch.x.detach()
        eps = per_sample_eps(self.eps, x)
        with model_mode(model, self.train_mode):
            return fgsm_point(
                model,
                x,
                batch.target,
                eps,
                self.norm,
                self.rel_step,
                task=ctx.task,
                random=True,
                generator=ctx.generator,
            )

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        with ctx.attack_precision():
            x_adv = self.perturb(model, batch, ctx)
        adv = model(x_adv)
        loss = ctx.task.loss(adv, batch.target).mean()
        adv_accuracy = float(ctx.task.correct(adv.detach(), batch.target).float().mean())
        return StepOutput(loss, None, {"adv_accuracy": adv_accuracy})
