"""Semantic segmentation: per-sample soft Dice + cross-entropy loss, hard Dice metrics, predicate "Dice ≥ τ".

The predicate is AMAT's (Ma & Liang, arXiv 2206.01736, METHODS §1.6): a sample counts as right while its hard
Dice, maximised over the foreground classes, is at least ``tau``; an attack "fools" it once the Dice drops
below ``tau``. The reported per-sample Dice is the mean over foreground classes (the two agree for one class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from medrobust.errors import ConfigError, DataError
from medrobust.metrics import segmentation as S

REDUCTIONS = ("max", "mean")


@dataclass(frozen=True)
class SegmentationTask:
    """Per-sample loss, Dice predicate and Dice metrics for ``K``-class segmentation (class 0 = background).

    Args:
        num_classes: ``K`` including the background (2 for lesion vs background).
        class_names: optional names, one per class.
        tau: Dice threshold of the predicate ``Dice ≥ tau`` (MSD Heart 0.911, Hippocampus 0.807, Prostate 0.861
            in AMAT; 0.5 by default).
        reduce: per-sample Dice of the predicate over foreground classes: ``"max"`` (AMAT) or ``"mean"``.
        dice_weight: weight of ``1 − soft Dice`` in the loss.
        ce_weight: weight of the pixel-mean cross-entropy in the loss.

    Shape:
        - output: ``(N, K, *spatial)`` logits.
        - target: ``(N, *spatial)`` integer labels in ``0..K−1``.
    """

    num_classes: int = 2
    class_names: tuple[str, ...] = ()
    tau: float = 0.5
    reduce: str = "max"
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    kind: str = "segmentation"

    def __post_init__(self) -> None:
        if self.kind != "segmentation":
            raise ConfigError(f"SegmentationTask has kind 'segmentation', got {self.kind!r}")
        if self.num_classes < 2:
            raise ConfigError(f"segmentation needs at least 2 classes (background + one), got {self.num_classes}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if not 0 <= self.tau <= 1:
            raise ConfigError(f"the Dice threshold tau must lie in [0, 1], got {self.tau}")
        if self.reduce not in REDUCTIONS:
            raise ConfigError(f"unknown Dice reduction {self.reduce!r}; use 'max' (AMAT) or 'mean'")
        if self.dice_weight < 0 or self.ce_weight < 0 or self.dice_weight + self.ce_weight == 0:
            raise ConfigError("dice_weight and ce_weight must be >= 0 and not both 0")

    @property
    def dense(self) -> bool:
        """True: a label map per sample; ``accuracy`` is the rate of Dice ≥ ``tau``."""
        return True

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """``("dice",)``."""
        return ("dice",)

    @property
    def calibrated(self) -> bool:
        """False: no per-sample class probabilities."""
        return False

    @property
    def has_majority_rate(self) -> bool:
        """False: there is no majority class."""
        return False

    @property
    def output_dim(self) -> int:
        """Output channels the model must produce (one logit map per class)."""
        return self.num_classes

    def _check_output(self, output: Tensor) -> None:
        if output.ndim < 3 or output.shape[1] != self.num_classes:
            raise DataError(
                f"segmentation output has shape {tuple(output.shape)}; expected (N, {self.num_classes}, *spatial)"
            )

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample ``ce_weight·mean CE + dice_weight·(1 − soft Dice)`` ``(N,)``."""
        self._check_output(output)
        z, y = output.float(), target.long()
        ce = F.cross_entropy(z, y, reduction="none").flatten(1).mean(dim=1)
        dice = S.soft_dice(torch.softmax(z, dim=1), y)
        return self.ce_weight * ce + self.dice_weight * (1 - dice)

    def predict(self, output: Tensor) -> Tensor:
        """Label map ``(N, *spatial)`` (argmax over classes)."""
        self._check_output(output)
        return output.argmax(dim=1)

    def probabilities(self, output: Tensor) -> Tensor:
        """Per-pixel class probabilities ``(N, K, *spatial)``."""
        return torch.softmax(output.float(), dim=1)

    def dice(self, output: Tensor, target: Tensor, reduce: str | None = None) -> Tensor:
        """Per-sample hard Dice ``(N,)`` (``reduce`` defaults to the predicate's)."""
        return S.dice_per_sample(self.predict(output), target, self.num_classes, reduce or self.reduce)

    def correct(self, output: Tensor, target: Tensor) -> Tensor:
        """Bool ``(N,)``: hard Dice ≥ ``tau``."""
        return self.dice(output, target) >= self.tau

    def margin(self, output: Tensor, target: Tensor) -> Tensor:
        """``tau − hard Dice`` ``(N,)`` (> 0 exactly when wrong), differentiated through the soft Dice.

        The hard Dice has zero gradient, so the value is the hard one and the gradient is that of
        ``−soft Dice`` of the class the predicate uses (a straight-through estimator): maximising the margin
        lowers the Dice, and its sign always agrees with :meth:`correct`.
        """
        self._check_output(output)
        probs = torch.softmax(output.float(), dim=1)
        hard = S.dice_per_class(self.predict(output), target, self.num_classes).to(probs.dtype)
        soft = S.soft_dice_per_class(probs, target)
        if self.reduce == "max":
            pick = hard.argmax(dim=1, keepdim=True)
            hard_s, soft_s = hard.gather(1, pick).squeeze(1), soft.gather(1, pick).squeeze(1)
        else:
            hard_s, soft_s = hard.mean(dim=1), soft.mean(dim=1)
        return (self.tau - hard_s) - (soft_s - soft_s.detach())

    def check_target(self, target: Tensor) -> None:
        """Raise :class:`DataError` for masks that are not integer label maps in ``0..K−1``."""
        if target.ndim < 2:
            raise DataError(f"segmentation targets must be label maps (N, *spatial); got {tuple(target.shape)}")
        if torch.is_floating_point(target) and bool((target != target.round()).any()):
            raise DataError("segmentation targets must hold integer class labels; got fractional values")
        bad = (target < 0) | (target >= self.num_classes)
        if bool(bad.any()):
            value = target[bad].flatten()[0].item()
            raise DataError(f"mask label {value} is out of range for {self.num_classes} classes; fix the masks")

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """``dice`` (mean per-sample hard Dice), ``dice_total`` (voxel Dice over the split), ``accuracy``
        (fraction with Dice ≥ ``tau``) and, for several foreground classes, ``dice_<class>`` per class."""
        pred = self.predict(outputs)
        per_class = S.dice_per_class(pred, targets, self.num_classes)
        out = {
            "dice": float(per_class.mean(dim=1).mean()),
            "dice_total": S.total_dice(pred, targets, self.num_classes),
            "accuracy": float((self.dice(outputs, targets) >= self.tau).double().mean()),
        }
        if self.num_classes > 2:
            names = self.class_names or tuple(str(c) for c in range(self.num_classes))
            out.update({f"dice_{names[c]}": float(per_class[:, c - 1].mean()) for c in range(1, self.num_classes)})
        return out
