"""The :class:`Task` protocol: what "wrong" means for a model's output.

Attacks, margins, adaptive training and evaluation are written once against this interface. This is the
"loss-defined margin" idea of AMAT (Ma & Liang, arXiv 2206.01736): IMA for classification and AMAT for dense
tasks are one algorithm with different :meth:`Task.correct` predicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from medrobust.errors import DataError


@runtime_checkable
class Task(Protocol):
    """Per-sample loss, correctness predicate and metrics of a prediction problem.

    Shape:
        - output: ``(N, *)`` raw model output (logits for classification).
        - target: ``(N, *)`` as stored in the dataset.
    """

    @property
    def kind(self) -> str:
        """``"multiclass"``, ``"binary"``, ``"multilabel"``, ``"segmentation"``, ``"landmark"`` or ``"detection"``."""
        ...

    @property
    def dense(self) -> bool:
        """True when the output is a map (segmentation, landmark heatmaps, detection heatmaps): continuous metrics
        (Dice, MRE, mAP) per ε,
        attacks pushed to every ε independently, ``accuracy`` is the predicate rate."""
        ...

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """The metric names a table leads with (``accuracy``; ``dice``; ``mre`` and one SDR)."""
        ...

    @property
    def calibrated(self) -> bool:
        """True when per-sample class probabilities exist, so RMSCE, ECE, entropy and reliability diagrams apply."""
        ...

    @property
    def has_majority_rate(self) -> bool:
        """True when a majority-class rate is defined (the baseline a constant classifier reaches)."""
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


@dataclass(frozen=True)
class Capabilities:
    """What a task supports (see :class:`Task`), as saved in the task record of ``results.json``.

    Attributes:
        dense: the task predicts maps (segmentation, landmarks, detection).
        headline_metrics: the metric names a table leads with.
        calibrated: RMSCE, ECE, entropy and reliability diagrams apply.
        has_majority_rate: a majority-class rate is defined.
    """

    dense: bool
    headline_metrics: tuple[str, ...]
    calibrated: bool
    has_majority_rate: bool

    @classmethod
    def of(cls, task: Task) -> Capabilities:
        """The capabilities ``task`` declares."""
        return cls(bool(task.dense), tuple(task.headline_metrics), bool(task.calibrated), bool(task.has_majority_rate))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (the ``"capabilities"`` entry of a task record)."""
        return {"dense": self.dense, "headline_metrics": list(self.headline_metrics), "calibrated": self.calibrated,
                "has_majority_rate": self.has_majority_rate}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Capabilities:
        """Inverse of :meth:`to_dict`; raises :class:`DataError` on a malformed entry."""
        try:
            metrics = d["headline_metrics"]
            if isinstance(metrics, str):
                raise TypeError(metrics)
            return cls(bool(d["dense"]), tuple(str(m) for m in metrics), bool(d["calibrated"]),
                       bool(d["has_majority_rate"]))  # fmt: skip
        except (KeyError, TypeError):
            raise DataError("the task record has malformed capabilities; re-run 'medrobust evaluate'") from None


def sdr_headline(radii: Any = None) -> str:
    """The SDR a landmark table leads with: ``sdr@2`` when 2 is in ``radii`` (default 1, 2, 3, 4), else the first."""
    values = [float(r) for r in (radii if radii else (1.0, 2.0, 3.0, 4.0))]
    return f"sdr@{2.0 if 2.0 in values else values[0]:g}"
