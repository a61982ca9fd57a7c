"""FGSM adversarial data augmentation for fine-tuning (Yan et al., MRNet knee-MRI robustness study; METHODS §1.3).

Start from a trained model (``train.init`` / ``--init RUN``) and fine-tune on batches in which a *retrain
percentage* of the samples is replaced by (or extended with) FGSM examples carrying their true labels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medrobust.attacks.fgsm import FGSM
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, check_norm
from medrobust.methods._common import choice, positive
from medrobust.methods.base import Batch, StepContext, StepOutput, TrainingMethod
from medrobust.tasks.base import Task

MODES: tuple[str, ...] = ("replace", "add")


class FGSMAugmentation(TrainingMethod):
    """Each epoch, ``k = round(percentage/100 · N)`` of the ``N`` training samples (ties to even), drawn with the
    method's generator at the epoch's first step, become FGSM examples wherever they appear in a batch.

    ``x + eps·sign(∇ₓL)`` (L∞; ``eps·∇/‖∇‖₂`` for L2), clamped to [0, 1], computed on the chosen samples only
    with the model in eval mode (``train_mode=True`` to change). ``mode="replace"`` swaps them in place (batch
    size unchanged); ``mode="add"`` appends them (batch size ``B + k``). The loss is the mean task loss over the
    resulting batch; the reported output is that of the first ``B`` rows (clean ones in ``"add"`` mode).

    Args:
        eps: FGSM step (Yan et al. report the best between 1e-5 and 0.003).
        percentage: retrain percentage in [0, 100] (1, 2, 6 or 10 in the paper).
        norm: ``"linf"`` or ``"l2"``.
        mode: ``"replace"`` or ``"add"``.
        train_mode: run the attack with the model in train mode.

    Shape:
        - batch.x: ``(B, C, *spatial)`` in [0, 1].
    """

    name = "fgsm_aug"

    def __init__(
        self,
        eps: float = 0.003,
        percentage: float = 6.0,
        norm: Norm = "linf",
        mode: str = "replace",
        train_mode: bool = False,
    ) -> None:
        check_norm(norm)
        positive(self.name, "eps", eps)
        choice(self.name, "mode", mode, MODES)
        if not isinstance(percentage, (int, float)) or not 0 <= percentage <= 100:
            raise ConfigError(f"fgsm_aug: percentage must lie in [0, 100] (a percent, e.g. 6); got {percentage!r}")
        self.eps, self.percentage, self.mode = float(eps), float(percentage), mode
        self.attack = FGSM(norm=norm, train_mode=train_mode)
        self.selected = torch.zeros(0, dtype=torch.bool)
        self.epoch: int | None = None

    def setup(self, model: nn.Module, train_size: int, task: Task) -> None:
        self.selected = torch.zeros(train_size, dtype=torch.bool)
        self.epoch = None

    def count(self, train_size: int) -> int:
        """Number of training samples turned into FGSM examples per epoch."""
        return round(self.percentage * train_size / 100)

    def _select(self, ctx: StepContext) -> None:
        """Draw this epoch's FGSM samples (once per epoch, with the method's generator)."""
        if self.epoch == ctx.epoch:
            return
        n = len(self.selected)
        order = torch.randperm(n, generator=ctx.generator, device=ctx.generator.device).cpu()
        self.selected = torch.zeros(n, dtype=torch.bool)
        self.selected[order[: self.count(n)]] = True
        self.epoch = ctx.epoch

    def perturb(self, model: nn.Module, batch: Batch, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """The training inputs and targets of this step (``(B, *)`` or ``(B + k, *)``), detached."""
        x, y = batch.x.detach(), batch.target
        self._select(ctx)
        chosen = self.selected[batch.index.cpu()].nonzero().squeeze(1).to(x.device)
        if chosen.numel() == 0:
            return x, y
        x_adv = self.attack(model, x[chosen], y[chosen], task=ctx.task, eps=self.eps, generator=ctx.generator).x_adv
        if self.mode == "add":
            return torch.cat([x, x_adv.detach()]), torch.cat([y, y[chosen]])
        x = x.clone()
        x[chosen] = x_adv.detach()
        return x, y

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        with ctx.attack_precision():
            x, y = self.perturb(model, batch, ctx)
        output = model(x)
        loss = ctx.task.loss(output, y).mean()
        b = len(batch.x)
        return StepOutput(
            loss, output[:b].detach(), {"fgsm_fraction": float(self.selected[batch.index.cpu()].sum()) / b}
        )
