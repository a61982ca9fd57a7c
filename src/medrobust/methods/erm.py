"""Standard training (empirical risk minimisation): the task loss on clean data."""

from __future__ import annotations

from torch import nn

from medrobust.methods.base import Batch, StepContext, StepOutput, TrainingMethod


class Standard(TrainingMethod):
    """ERM: mean per-sample task loss on the clean batch (METHODS §1.1) — the baseline row of every comparison."""

    name = "standard"

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        output = model(batch.x)
        loss = ctx.task.loss(output, batch.target).mean()
        return StepOutput(loss=loss, output=output.detach())
