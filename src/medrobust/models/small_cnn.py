"""A small CNN that trains in seconds on a CPU."""

from __future__ import annotations

from torch import Tensor, nn

from medrobust.models.layers import conv, global_avg_pool, max_pool, norm_layer


class SmallCNN(nn.Module):
    """Three conv blocks (conv-norm-ReLU ×2, max-pool) with widths ``width·(1, 2, 4)``, global pool, linear head.

    Args:
        in_channels: image channels ``C``.
        num_outputs: logits (1 for single-logit binary).
        width: channels of the first block.
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        spatial_dims: 2 for images, 3 for volumes.

    Shape:
        - x: ``(N, C, *spatial)`` (already normalised; wrap with :class:`~medrobust.models.Normalize`).
        - output: ``(N, num_outputs)``.
    """

    def __init__(
        self, in_channels: int, num_outputs: int, width: int = 16, norm: str = "batch", spatial_dims: int = 2
    ) -> None:
        super().__init__()
        Conv, Pool = conv(spatial_dims), max_pool(spatial_dims)
        layers: list[nn.Module] = []
        c_in = in_channels
        for mult in (1, 2, 4):
            c = width * mult
            for _ in range(2):
                layers += [
                    Conv(c_in, c, 3, padding=1, bias=norm == "none"),
                    norm_layer(norm, c, spatial_dims),
                    nn.ReLU(),
                ]
                c_in = c
            layers.append(Pool(2))
        self.features = nn.Sequential(*layers, global_avg_pool(spatial_dims))
        self.head = nn.Linear(c_in, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
