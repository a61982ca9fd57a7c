"""ResNet-18 for 2D images and 3D volumes: CIFAR-style (3×3 stem, no max-pool) or ImageNet-style (7×7/2 + pool).

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016. The CIFAR-style stem is the one the IMA
paper uses for PathMNIST; GroupNorm is the one it uses for COVID-19 CT.
"""

from __future__ import annotations

from torch import Tensor, nn

from medrobust.errors import ConfigError
from medrobust.models.layers import conv, global_avg_pool, max_pool, norm_layer


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, spatial_dims: int) -> None:
        super().__init__()
        Conv = conv(spatial_dims)
        self.conv1 = Conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, c_out, spatial_dims)
        self.conv2 = Conv(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = norm_layer(norm, c_out, spatial_dims)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                Conv(c_in, c_out, 1, stride=stride, bias=False), norm_layer(norm, c_out, spatial_dims)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with four stages of two basic blocks, widths ``width·(1, 2, 4, 8)``.

    Args:
        in_channels: input channels ``C``.
        num_outputs: logits.
        stem: ``"cifar"`` (3×3 stride-1 conv, no max-pool) or ``"imagenet"`` (7×7 stride-2 conv + 3×3/2 max-pool).
        norm: ``"batch"`` or ``"group"``.
        width: channels of the first stage (64 in the original).
        spatial_dims: 2 or 3.

    Shape:
        - x: ``(N, C, *spatial)``; output ``(N, num_outputs)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        stem: str = "cifar",
        norm: str = "batch",
        width: int = 64,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        Conv = conv(spatial_dims)
        if stem == "cifar":
            self.stem = nn.Sequential(
                Conv(in_channels, width, 3, padding=1, bias=False), norm_layer(norm, width, spatial_dims), nn.ReLU()
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                Conv(in_channels, width, 7, stride=2, padding=3, bias=False),
                norm_layer(norm, width, spatial_dims),
                nn.ReLU(),
                max_pool(spatial_dims)(3, stride=2, padding=1),
            )
        else:
            raise ConfigError(f"unknown ResNet stem {stem!r}; use 'cifar' or 'imagenet'")
        blocks: list[nn.Module] = []
        c_in = width
        for i, mult in enumerate((1, 2, 4, 8)):
            c = width * mult
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(c_in, c, stride, norm, spatial_dims), BasicBlock(c, c, 1, norm, spatial_dims)]
            c_in = c
        self.layers = nn.Sequential(*blocks)
        self.pool = global_avg_pool(spatial_dims)
        self.fc = nn.Linear(c_in, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))))
