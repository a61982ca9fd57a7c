"""Classification tasks: multi-class, binary (one logit with BCE, or two logits) and multi-label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medrobust.errors import ConfigError, DataError
from medrobust.metrics import classification as M

ClassificationKind = Literal["multiclass", "binary", "multilabel"]


@dataclass(frozen=True)
class ClassificationTask:
    """Per-sample loss, predicate and metrics for classification.

    Args:
        kind: ``"multiclass"`` (softmax + CE), ``"binary"`` or ``"multilabel"`` (independent sigmoids + BCE).
        num_classes: number of classes (2 for binary) or of labels (multi-label).
        class_names: optional names, one per class or label.
        binary_logits: for ``kind="binary"``: 1 (one logit, BCE-with-logits) or 2 (softmax over two logits).
        positive_class: the class whose recall is the sensitivity (binary), usually the abnormal one.

    Shape:
        - output: ``(N, K)`` logits; ``(N, 1)`` or ``(N,)`` for single-logit binary.
        - target: ``(N,)`` integer class indices; ``(N, L)`` of 0/1 for multi-label.
    """

    kind: ClassificationKind = "multiclass"
    num_classes: int = 2
    class_names: tuple[str, ...] = ()
    binary_logits: int = 1
    positive_class: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("multiclass", "binary", "multilabel"):
            raise ConfigError(f"unknown classification kind {self.kind!r}; use multiclass, binary or multilabel")
        if self.kind == "binary" and self.num_classes != 2:
            raise ConfigError(f"a binary task has 2 classes, got num_classes={self.num_classes}")
        if self.num_classes < 2 and self.kind != "multilabel":
            raise ConfigError(f"a classification task needs at least 2 classes, got {self.num_classes}")
        if self.binary_logits not in (1, 2):
            raise ConfigError(f"binary_logits must be 1 or 2, got {self.binary_logits}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def dense(self) -> bool:
        """False: one prediction per sample."""
        return False

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """``("accuracy",)``."""
        return ("accuracy",)

    @property
    def calibrated(self) -> bool:
        """True: class probabilities per sample (RMSCE, ECE, entropy, reliability diagrams)."""
        return True

    @property
    def has_majority_rate(self) -> bool:
        """True: the majority-class rate is the baseline a constant classifier reaches."""
        return True

    @property
    def single_logit(self) -> bool:
        """True for a binary task with one logit."""
        return self.kind == "binary" and self.binary_logits == 1

    @property
    def output_dim(self) -> int:
        """Number of model outputs this task expects."""
        return 1 if self.single_logit else self.num_classes

    def _logits(self, output: Tensor) -> Tensor:
        if self.single_logit:
            return output.reshape(output.shape[0])
        if output.ndim != 2 or output.shape[1] != self.num_classes:
            raise DataError(f"model output has shape {tuple(output.shape)}; expected (N, {self.num_classes})")
        return output

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample loss ``(N,)``: CE, BCE-with-logits, or BCE averaged over labels."""
        z = self._logits(output).float()
        if self.single_logit:
            return F.binary_cross_entropy_with_logits(z, target.float(), reduction="none")
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(z, target.float(), reduction="none").mean(dim=1)
        return F.cross_entropy(z, target.long(), reduction="none")

    def predict(self, output: Tensor) -> Tensor:
        """Predicted class ``(N,)`` (long), or 0/1 labels ``(N, L)`` for multi-label."""
        z = self._logits(output)
        if self.single_logit:
            return (z > 0).long()
        if self.kind == "multilabel":
            return (z > 0).long()
        return z.argmax(dim=1)

    def probabilities(self, output: Tensor) -> Tensor:
        """Class probabilities ``(N, K)``; ``[1 - σ(z), σ(z)]`` for one logit; label probabilities for multi-label."""
        z = self._logits(output)
        z = z if z.dtype == torch.float64 else z.float()
        if self.single_logit:
            p = torch.sigmoid(z)
            return torch.stack([1 - p, p], dim=1)
        if self.kind == "multilabel":
            return torch.sigmoid(z)
        return torch.softmax(z, dim=1)

    def log_odds(self, output: Tensor) -> Tensor:
        """Binary: log-odds of ``positive_class`` ``(N,)`` in float64, the ROC score (probabilities saturate and tie).

        One logit ``z``: ``±z``; two logits: ``z_pos − z_neg``.
        """
        z = self._logits(output).detach().double()
        if self.single_logit:
            z = z.reshape(-1)
            return z if self.positive_class == 1 else -z
        pos = self.positive_class
        return z[:, pos] - z[:, 1 - pos]

    def correct(self, output: Tensor, target: Tensor) -> Tensor:
        """Bool ``(N,)``: prediction equals target (all labels, for multi-label)."""
        pred = self.predict(output)
        if self.kind == "multilabel":
            return (pred == target.long()).all(dim=1)
        return pred == target.long().reshape(pred.shape)

    def margin(self, output: Tensor, target: Tensor) -> Tensor:
        """CW margin ``(N,)``: ``max_{j≠y} z_j − z_y`` (``±z`` for one logit); > 0 means wrong."""
        z = self._logits(output).float()
        if self.single_logit:
            return z * (1 - 2 * target.float().reshape(z.shape))
        if self.kind == "multilabel":
            sign = 2 * target.float() - 1
            return (-sign * z).amax(dim=1)
        y = target.long().reshape(-1, 1)
        true = z.gather(1, y).squeeze(1)
        other = z.scatter(1, y, float("-inf")).amax(dim=1)
        return other - true

    def check_target(self, target: Tensor) -> None:
        """Raise :class:`DataError` for labels outside the class range or of the wrong shape."""
        if self.kind == "multilabel":
            if target.ndim != 2 or target.shape[1] != self.num_classes:
                raise DataError(
                    f"multi-label targets must have shape (N, {self.num_classes}); got {tuple(target.shape)}"
                )
            bad = ~((target == 0) | (target == 1))
        else:
            if target.ndim != 1:
                raise DataError(f"class targets must have shape (N,); got {tuple(target.shape)}")
            bad = (target < 0) | (target >= self.num_classes) | (target != target.long())
        if bool(bad.any()):
            value = target[bad].flatten()[0].item()
            raise DataError(f"label {value} is out of range for {self.num_classes} classes; fix the labels or the task")

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Accuracy, balanced accuracy, ROC AUC, sensitivity and specificity of a whole split.

        Binary: sensitivity/specificity of ``positive_class`` at threshold 0.5. Multi-class: macro averages of
        one-vs-rest recall and specificity; AUC is macro one-vs-rest. Multi-label: exact-match accuracy and
        macro averages over labels.
        """
        probs = self.probabilities(outputs.detach().double()).cpu().numpy()  # float64: fewer saturated ties
        pred = self.predict(outputs).detach().cpu().numpy()
        y = targets.detach().cpu().long().numpy()
        if self.kind == "multilabel":
            return _multilabel_metrics(y, pred, probs)
        k = self.num_classes
        out = {"accuracy": M.accuracy(y, pred), "balanced_accuracy": M.balanced_accuracy(y, pred, k)}
        if self.kind == "binary":
            pos = self.positive_class
            out["auc"] = M.roc_auc_binary(y == pos, self.log_odds(outputs).cpu().numpy())
            out["sensitivity"] = float(M.recall_per_class(y, pred, k)[pos])
            out["specificity"] = float(M.recall_per_class(y, pred, k)[1 - pos])
        else:
            out["auc"] = M.roc_auc_ovr(y, probs)
            out["sensitivity"] = float(np.nanmean(M.recall_per_class(y, pred, k)))
            out["specificity"] = float(np.nanmean(M.specificity_per_class(y, pred, k)))
        return out


def _multilabel_metrics(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    sens = [float(M.recall_per_class(y[:, j], pred[:, j], 2)[1]) for j in range(y.shape[1])]
    spec = [float(M.recall_per_class(y[:, j], pred[:, j], 2)[0]) for j in range(y.shape[1])]
    aucs = [M.roc_auc_binary(y[:, j], probs[:, j]) for j in range(y.shape[1])]
    bal = [(a + b) / 2 for a, b in zip(sens, spec, strict=True)]
    return {
        "accuracy": M.accuracy(y, pred),
        "balanced_accuracy": float(np.nanmean(bal)),
        "auc": float(np.nanmean(aucs)),
        "sensitivity": float(np.nanmean(sens)),
        "specificity": float(np.nanmean(spec)),
    }
