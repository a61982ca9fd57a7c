"""A small U-Net for dense outputs: segmentation logits or landmark heatmaps (Ronneberger et al., MICCAI 2015).

Own implementation (no MONAI): encoder blocks of two conv-norm-ReLU layers with max-pooling between them, a
decoder that upsamples (nearest neighbour, to the skip's exact size, so odd sizes such as 28 → 14 → 7 work),
concatenates the skip connection and applies two conv-norm-ReLU layers, and a 1×1 convolution head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medrobust.errors import ConfigError
from medrobust.models.layers import conv, max_pool, norm_layer


def _block(c_in: int, c_out: int, norm: str, dims: int) -> nn.Sequential:
    Conv = conv(dims)
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [Conv(c, c_out, 3, padding=1, bias=norm == "none"), norm_layer(norm, c_out, dims), nn.ReLU()]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net with ``depth`` poolings and widths ``width·2^level``.

    Args:
        in_channels: image channels ``C``.
        num_outputs: output channels (classes for segmentation, landmarks for heatmaps).
        width: channels of the first level (16: about 0.47 M parameters at depth 3).
        depth: number of poolings (3).
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
        spatial_dims: 2 for images, 3 for volumes.

    Shape:
        - x: ``(N, C, *spatial)`` (already normalised; wrap with :class:`~medrobust.models.Normalize`).
        - output: ``(N, num_outputs, *spatial)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        width: int = 16,
        depth: int = 3,
        norm: str = "batch",
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ConfigError(f"unet needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, widths[0], norm, spatial_dims)])
        self.down.extend(_block(widths[i], widths[i + 1], norm, spatial_dims) for i in range(depth))
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i], norm, spatial_dims)
                                for i in reversed(range(depth)))  # fmt: skip
        self.pool = max_pool(spatial_dims)(2)
        self.head = conv(spatial_dims)(widths[0], num_outputs, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips: list[Tensor] = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)
