"""Per-sample margin bookkeeping of adaptive-margin training (IMA, AMAT; METHODS §1.5): ``E``, ``E_new`` and the
epoch's flags, indexed by dataset index, and the three-way epoch-end update."""

from __future__ import annotations

import torch
from torch import Tensor

from medrobust.distributed import merge_owned


class Margins:
    """Per-sample margins ``E`` and the current epoch's ``E_new`` and flags, indexed by dataset index.

    Shape:
        - E, E_new, seen, clean_ok, flipped: ``(train_size,)``.
    """

    def __init__(self, size: int, delta: float, device: torch.device | str = "cpu") -> None:
        self.E = torch.full((size,), float(delta), device=device)
        self.begin_epoch()

    def begin_epoch(self) -> None:
        """``E_new = E``; clear the flags."""
        self.E_new = self.E.clone()
        self.seen = torch.zeros_like(self.E, dtype=torch.bool)
        self.clean_ok = torch.zeros_like(self.seen)
        self.flipped = torch.zeros_like(self.seen)

    def record(self, index: Tensor, clean_ok: Tensor, flipped: Tensor, distance: Tensor) -> None:
        """Store a batch's flags; for clean-correct flipped samples ``E_new = (E_new + distance) / 2``.

        Shape:
            - index: ``(B,)`` long; clean_ok, flipped: bool ``(B,)``; distance: ``(B,)``.
        """
        self.seen[index] = True
        self.clean_ok[index] = clean_ok
        self.flipped[index] = flipped
        current = self.E_new[index]
        self.E_new[index] = torch.where(clean_ok & flipped, (current + distance.to(current.dtype)) / 2, current)

    def update(self, delta: float, e_max: float, only_grow: bool = False, floor: float = 0.0) -> tuple[Tensor, Tensor]:
        """Epoch end: expand (correct, never flipped: ``E += δ``), refine (correct, flipped: ``E = max(E_new,
        floor)``), leave misclassified samples alone, clamp to ``[0, e_max]``; ``only_grow`` never lowers a margin
        (AMAT's landmark setting); ``floor = δ`` is AMAT's detection rule.

        Returns:
            The bool masks of the samples whose margin grew (expanded and not already at ``e_max``) and of the
            refined ones.
        """
        expand = self.seen & self.clean_ok & ~self.flipped
        refine = self.seen & self.clean_ok & self.flipped
        updated = torch.where(expand, self.E + delta, torch.where(refine, self.E_new.clamp(min=floor), self.E))
        updated = updated.clamp(0, e_max)
        updated = torch.maximum(updated, self.E) if only_grow else updated
        grown = expand & (updated > self.E)
        self.E = updated
        return grown, refine

    def merge_ranks(self) -> None:
        """Under ``torchrun``: merge every rank's records of this epoch (each sample is seen by one rank), so every
        rank holds the full ``E_new`` and flags and the epoch-end :meth:`update` gives the same table everywhere."""
        owned = self.seen
        self.E_new = merge_owned(self.E_new, owned)
        self.clean_ok = merge_owned(self.clean_ok, owned)
        self.flipped = merge_owned(self.flipped, owned)
        self.seen = merge_owned(self.seen, owned)
