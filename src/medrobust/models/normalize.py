"""Input normalisation inside the model, so every attack budget is in [0, 1] pixel units."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Normalize(nn.Module):
    """Wraps ``net`` with ``(x - mean) / std`` per channel.

    Keeping normalisation inside the model means every tensor the library passes around is in [0, 1] and every
    ε is in the same pixel units (DESIGN.md, idea 1).

    Args:
        net: the network applied to normalised inputs.
        mean: per-channel mean (one value or one per channel).
        std: per-channel standard deviation.

    Shape:
        - x: ``(N, C, *spatial)`` in [0, 1].
        - output: whatever ``net`` returns.
    """

    def __init__(
        self, net: nn.Module, mean: Sequence[float] | float = 0.5, std: Sequence[float] | float = 0.25
    ) -> None:
        super().__init__()
        m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        s = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if bool((s <= 0).any()):
            raise ValueError("std must be positive")
        self.register_buffer("mean", m)
        self.register_buffer("std", s)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean: Tensor = self.mean  # type: ignore[assignment]
        std: Tensor = self.std  # type: ignore[assignment]
        return self.net((x - mean.reshape(shape)) / std.reshape(shape))
