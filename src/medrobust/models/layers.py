"""Dimension-agnostic layer factories (2D images and 3D volumes share one model code)."""

from __future__ import annotations

from torch import nn

from medrobust.errors import ConfigError


def conv(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return nn.Conv2d if _check_dims(spatial_dims) == 2 else nn.Conv3d


def max_pool(spatial_dims: int) -> type[nn.MaxPool2d] | type[nn.MaxPool3d]:
    """``nn.MaxPool2d`` or ``nn.MaxPool3d``."""
    return nn.MaxPool2d if _check_dims(spatial_dims) == 2 else nn.MaxPool3d


def global_avg_pool(spatial_dims: int) -> nn.Module:
    """Adaptive average pooling to 1 followed by flatten."""
    pool = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[_check_dims(spatial_dims)]
    return nn.Sequential(pool(1), nn.Flatten())


def norm_layer(kind: str, channels: int, spatial_dims: int, groups: int = 32) -> nn.Module:
    """BatchNorm (``"batch"``), GroupNorm (``"group"``), instance norm with affine parameters and no running
    statistics (``"instance"``, nnU-Net's choice; a GroupNorm with one channel per group) or nothing (``"none"``)."""
    if kind == "batch":
        return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[_check_dims(spatial_dims)](channels)
    if kind == "group":
        g = min(groups, channels)
        while channels % g:
            g -= 1
        return nn.GroupNorm(g, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; use 'batch', 'group', 'instance' or 'none'")


def _check_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return spatial_dims
