"""The :class:`TrainingMethod` interface: methods differ only in ``training_step``, ``on_epoch_end`` and state.

The training loop (:func:`medrobust.training.fit`) has no per-method branches; a method receives the model, a
:class:`Batch` and a :class:`StepContext` and returns the loss to minimise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from medrobust.tasks.base import Task


@dataclass
class Batch:
    """A training batch.

    Shape:
        - x: ``(B, C, *spatial)`` float in [0, 1].
        - target: ``(B, ...)``.
        - index: ``(B,)`` long, the dataset index of each sample (per-sample state such as IMA margins uses it).
    """

    x: Tensor
    target: Tensor
    index: Tensor


@dataclass
class StepContext:
    """What a training step may use besides the model and the batch."""

    task: Task
    epoch: int
    step: int
    generator: torch.Generator
    device: torch.device
    autocast: Any = None  # a context-manager factory for mixed precision (None on CPU)
    dataset_size: int = 0


@dataclass
class StepOutput:
    """The loss to minimise and what to log.

    Attributes:
        loss: scalar tensor with a graph to the parameters.
        output: ``(B, ...)`` clean model outputs (detached), used for running training accuracy; may be None.
        logs: extra scalars averaged over the epoch (sample-weighted).
    """

    loss: Tensor
    output: Tensor | None = None
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class EpochContext:
    """Passed to :meth:`TrainingMethod.on_epoch_end`."""

    epoch: int
    run_dir: str | None
    task: Task


class TrainingMethod:
    """Base class: standard (ERM) behaviour for everything but :meth:`training_step`."""

    name = "base"

    def setup(self, model: nn.Module, train_size: int, task: Task) -> None:
        """Called once before training (allocate per-sample state here)."""

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        """Return the loss of one batch (the model is in train mode)."""
        raise NotImplementedError  # abstract

    def on_epoch_end(self, ctx: EpochContext) -> dict[str, float]:
        """Update per-epoch state; returns scalars to log."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint with the model."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
