"""The :class:`Task` protocol: what "wrong" means for a model's output.

Attacks, margins, adaptive training and evaluation are written once against this interface. This is the
"loss-defined margin" idea of AMAT (Ma & Liang, arXiv 2206.01736): IMA for classification and AMAT for dense
tasks are one algorithm with different :meth:`Task.correct` predicates.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Task(Protocol):
    """Per-sample loss, correctness predicate and metrics of a prediction problem.

    Shape:
        - output: ``(N, *)`` raw model output (logits for classification).
        - target: ``(N, *)`` as stored in the dataset.
    """

    @property
    def kind(self) -> str:
        """``"multiclass"``, ``"binary"``, ``"multilabel"``, ``"segmentation"`` or ``"landmark"``."""
        ...

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample training loss, shape ``(N,)``."""
        ...

    def correct(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample predicate, bool ``(N,)``: the prediction counts as right."""
        ...

    def margin(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample signed margin ``(N,)``: negative when correct, positive when wrong (CW-style loss)."""
        ...

    def check_target(self, target: Tensor) -> None:
        """Raise :class:`~medrobust.errors.DataError` if ``target`` is not valid for this task."""
        ...

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Clean metrics of a whole split (``outputs`` concatenated over batches)."""
        ...
