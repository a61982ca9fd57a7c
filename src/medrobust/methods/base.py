"""The :class:`TrainingMethod` interface: methods differ only in ``training_step``, ``on_epoch_end`` and state.

The training loop (:func:`medrobust.training.fit`) has no per-method branches; a method receives the model, a
:class:`Batch` and a :class:`StepContext` and returns the loss to minimise.
"""

from __future__ import annotations

import contextlib
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
    """What a training step may use besides the model and the batch.

    The training loop runs ``training_step`` under ``autocast()`` (bfloat16 on CUDA with ``train.amp``); a method
    runs its attack under :meth:`attack_precision`, so attacks stay in fp32 unless ``amp_attack`` asks otherwise.
    """

    task: Task
    epoch: int
    step: int
    generator: torch.Generator
    device: torch.device
    autocast: Any = None  # a context-manager factory for mixed precision (None on CPU)
    dataset_size: int = 0
    seed: int = 0  # the run's seed: with epoch and dataset index it keys per-sample draws (geometry.SampleDraws)
    amp_attack: bool = False  # run attacks under the update's autocast too (train.amp_attack)

    def attack_precision(self) -> contextlib.AbstractContextManager[Any]:
        """The precision of a training step's attack: autocast switched off (fp32) inside the step's autocast,
        unless ``amp_attack``; nothing to change where the step has no autocast."""
        if self.autocast in (None, contextlib.nullcontext) or self.amp_attack:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, enabled=False)


@dataclass
class StepOutput:
    """The loss to minimise and what to log.

    A step may backpropagate part of its loss itself (IMA backpropagates its clean term before the attack, which
    frees that forward's graph); it then returns the rest as ``pending``. The caller zeroes the gradients before
    ``training_step`` and calls :meth:`backward` after it.

    Attributes:
        loss: scalar tensor, the batch's loss; with a graph to the parameters unless ``pending`` is set.
        output: ``(B, ...)`` clean model outputs (detached), used for running training accuracy; may be None.
        logs: extra scalars averaged over the epoch (sample-weighted).
        pending: the part of ``loss`` still to backpropagate when the step backpropagated the rest; ``None``: all
            of ``loss``.
    """

    loss: Tensor
    output: Tensor | None = None
    logs: dict[str, float] = field(default_factory=dict)
    pending: Tensor | None = None

    def backward(self) -> None:
        """Backpropagate what the step has not: ``pending`` when set (nothing when it has no graph), else ``loss``."""
        if self.pending is None:
            self.loss.backward()
        elif self.pending.requires_grad:
            self.pending.backward()


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
