"""Model registry. Every model is wrapped in :class:`Normalize`, so it takes inputs in [0, 1].

Example:
    >>> from medrobust import models
    >>> net = models.create("small_cnn", in_channels=1, num_outputs=1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from medrobust.errors import ConfigError
from medrobust.models.normalize import Normalize
from medrobust.models.resnet import ResNet18
from medrobust.models.small_cnn import SmallCNN
from medrobust.registry import Registry, check_options

MODELS: Registry[nn.Module] = Registry("model")


@MODELS.register("small_cnn", help="3-block CNN (72 k parameters at width 16), fast on CPU")
def small_cnn(
    *, in_channels: int, num_outputs: int, width: int = 16, norm: str = "batch", spatial_dims: int = 2
) -> nn.Module:
    """Small CNN (see :class:`SmallCNN`)."""
    return SmallCNN(in_channels, num_outputs, width=width, norm=norm, spatial_dims=spatial_dims)


@MODELS.register("resnet18", help="ResNet-18, CIFAR-style (3×3 stem) or ImageNet-style; BatchNorm or GroupNorm; 2D/3D")
def resnet18(
    *,
    in_channels: int,
    num_outputs: int,
    stem: str = "cifar",
    norm: str = "batch",
    width: int = 64,
    spatial_dims: int = 2,
) -> nn.Module:
    """ResNet-18 (see :class:`ResNet18`)."""
    return ResNet18(in_channels, num_outputs, stem=stem, norm=norm, width=width, spatial_dims=spatial_dims)


def create(
    name: str,
    *,
    in_channels: int,
    num_outputs: int,
    mean: Sequence[float] | float = 0.5,
    std: Sequence[float] | float = 0.25,
    **options: Any,
) -> Normalize:
    """Build model ``name`` wrapped in :class:`Normalize` (inputs in [0, 1]).

    Args:
        name: a registered model (``medrobust list models``).
        in_channels: image channels.
        num_outputs: number of logits.
        mean: per-channel normalisation mean applied inside the model.
        std: per-channel normalisation std.
        **options: model options (``width``, ``norm``, ``stem``, ``spatial_dims``).
    """
    if in_channels < 1 or num_outputs < 1:
        raise ConfigError(f"in_channels and num_outputs must be ≥ 1, got {in_channels} and {num_outputs}")
    entry = MODELS.get(name)
    check_options(f"model {name!r}", entry.factory, {"in_channels": 1, "num_outputs": 1, **options})
    return Normalize(entry.factory(in_channels=in_channels, num_outputs=num_outputs, **options), mean, std)


__all__ = ["MODELS", "Normalize", "ResNet18", "SmallCNN", "create"]
