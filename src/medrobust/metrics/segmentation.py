"""Dice metrics of label maps (hard segmentations), per sample and over all voxels.

Conventions: class 0 is the background; Dice is computed per foreground class ``c ≥ 1`` as
``2·|P_c ∩ G_c| / (|P_c| + |G_c|)``, and a class absent from both prediction and ground truth scores 1 (nothing
to find, nothing found). Torch in, torch or float out, so the same functions serve the task predicate (inside
attacks) and the reported metrics.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _counts(pred: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per sample and foreground class: intersection, predicted and true voxel counts, each ``(N, K−1)``."""
    n = pred.shape[0]
    p, g = pred.reshape(n, -1), target.reshape(n, -1).long()
    classes = torch.arange(1, num_classes, device=pred.device).view(1, -1, 1)
    pc, gc = p.unsqueeze(1) == classes, g.unsqueeze(1) == classes
    return (pc & gc).sum(dim=2).double(), pc.sum(dim=2).double(), gc.sum(dim=2).double()


def dice_per_class(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """Hard Dice per sample and foreground class ``(N, K−1)``; 1 where the class is absent from both.

    Args:
        pred: predicted labels ``(N, *spatial)`` (integers in ``0..K−1``).
        target: true labels, same shape.
        num_classes: ``K``, background included.

    Shape:
        - output: ``(N, K−1)`` float64.
    """
    return _dice(*_counts(pred, target, num_classes))


def dice_per_sample(pred: Tensor, target: Tensor, num_classes: int, reduce: str = "mean") -> Tensor:
    """Per-sample hard Dice ``(N,)``: mean (``reduce="mean"``) or max (``"max"``, AMAT's predicate) over the
    foreground classes of :func:`dice_per_class`."""
    d = dice_per_class(pred, target, num_classes)
    return d.amax(dim=1) if reduce == "max" else d.mean(dim=1)


def total_dice(pred: Tensor, target: Tensor, num_classes: int) -> float:
    """Voxel Dice over the whole split: counts summed over samples, then Dice per class, mean over classes.

    A class absent from every prediction and every ground truth scores 1.
    """
    inter, p, g = (t.sum(dim=0) for t in _counts(pred, target, num_classes))
    return float(_dice(inter, p, g).mean())


def _dice(inter: Tensor, p: Tensor, g: Tensor) -> Tensor:
    """``2·|P∩G| / (|P| + |G|)`` from counts; 1 where the class is absent from both."""
    denom = p + g
    return torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom))


def soft_dice_per_class(probs: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft Dice per sample and foreground class ``(N, K−1)``: ``(2·Σ p·g + s) / (Σ p + Σ g + s)``.

    ``p`` are softmax probabilities, ``g`` the one-hot target; the smoothing ``s`` makes an empty class with an
    empty prediction score 1.

    Shape:
        - probs: ``(N, K, *spatial)``; target: ``(N, *spatial)`` long; output: ``(N, K−1)``.
    """
    k = probs.shape[1]
    onehot = torch.nn.functional.one_hot(target.long(), k).movedim(-1, 1).to(probs.dtype)
    dims = tuple(range(2, probs.ndim))
    inter = (probs * onehot).sum(dim=dims)[:, 1:]
    total = (probs + onehot).sum(dim=dims)[:, 1:]
    return (2 * inter + smooth) / (total + smooth)


def soft_dice(probs: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Per-sample soft Dice ``(N,)``: the mean over foreground classes of :func:`soft_dice_per_class`.

    Shape:
        - probs: ``(N, K, *spatial)``; target: ``(N, *spatial)`` long; output: ``(N,)``.
    """
    return soft_dice_per_class(probs, target, smooth).mean(dim=1)
