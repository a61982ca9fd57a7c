"""Dice metrics of label maps (hard segmentations), per sample and over all voxels.

Conventions: class 0 is the background and is never scored; Dice is computed per foreground class ``c ≥ 1`` as
``2·|P_c ∩ G_c| / (|P_c| + |G_c|)``. Torch in, torch or float out, so the same functions serve the task predicate
(inside attacks) and the reported metrics.

Empty classes (``ignore_empty``): by default (``False``) a class absent from the ground truth scores 1 when it is
absent from the prediction too (nothing to find, nothing found) and 0 when it is predicted (every predicted voxel is
a false positive). This is MONAI ``DiceMetric(include_background=False, ignore_empty=False)``. With
``ignore_empty=True`` a class absent from the ground truth scores NaN whatever is predicted and is left out of the
means, as in MONAI's default ``DiceMetric(ignore_empty=True)``. medrobust's default is ``False`` because an attack
that makes a model paint lesions into a lesion-free image must lower the score, which MONAI's default cannot see.
tests/test_monai_models.py checks both policies against MONAI's ``DiceMetric``.
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


def dice_per_class(pred: Tensor, target: Tensor, num_classes: int, ignore_empty: bool = False) -> Tensor:
    """Hard Dice per sample and foreground class ``(N, K−1)``, empty classes scored by ``ignore_empty``.

    Args:
        pred: predicted labels ``(N, *spatial)`` (integers in ``0..K−1``).
        target: true labels, same shape.
        num_classes: ``K``, background included.
        ignore_empty: NaN where the class is absent from the ground truth (MONAI's default) instead of 1 (absent
            from the prediction too) or 0 (see the module docstring).

    Shape:
        - output: ``(N, K−1)`` float64.
    """
    return _dice(*_counts(pred, target, num_classes), ignore_empty)


def dice_per_sample(
    pred: Tensor, target: Tensor, num_classes: int, reduce: str = "mean", ignore_empty: bool = False
) -> Tensor:
    """Per-sample hard Dice ``(N,)``: mean (``reduce="mean"``) or max (``"max"``, AMAT's predicate) over the
    foreground classes of :func:`dice_per_class`; NaN classes are skipped, and a sample with none left is NaN."""
    d = dice_per_class(pred, target, num_classes, ignore_empty)
    if reduce != "max":
        return d.nanmean(dim=1)
    best = d.nan_to_num(nan=-torch.inf).amax(dim=1)
    return torch.where(torch.isinf(best), torch.nan, best)


def total_dice(pred: Tensor, target: Tensor, num_classes: int, ignore_empty: bool = False) -> float:
    """Voxel Dice over the whole split: counts summed over samples, then Dice per class, mean over classes.

    A class absent from every ground truth scores 1 if it is never predicted and 0 otherwise, or is left out
    (``ignore_empty``; NaN when every class is left out).
    """
    inter, p, g = (t.sum(dim=0) for t in _counts(pred, target, num_classes))
    return float(_dice(inter, p, g, ignore_empty).nanmean())


def _dice(inter: Tensor, p: Tensor, g: Tensor, ignore_empty: bool = False) -> Tensor:
    """``2·|P∩G| / (|P| + |G|)`` from counts; where ``|G| = 0``: NaN (``ignore_empty``), else 1 if ``|P| = 0``."""
    denom = p + g
    dice = torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom))
    return torch.where(g > 0, dice, torch.nan) if ignore_empty else dice


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
