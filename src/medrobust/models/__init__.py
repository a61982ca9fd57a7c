"""Model registry. Every model is wrapped in :class:`Normalize`, so it takes inputs in [0, 1].

Besides medrobust's own models, ``monai:<Name>`` names any network class of ``monai.networks.nets`` (extra
``medrobust[monai]``; see :mod:`medrobust.models.monai_nets`).

Example:
    >>> from medrobust import models
    >>> net = models.create("small_cnn", in_channels=1, num_outputs=1)
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn

from medrobust.errors import ConfigError
from medrobust.models import monai_nets
from medrobust.models.detector import BOX_CHANNELS, CenterNetFPN
from medrobust.models.mrnet import MRNet
from medrobust.models.normalize import Normalize
from medrobust.models.resnet import ResNet18
from medrobust.models.small_cnn import SmallCNN
from medrobust.models.unet import UNet
from medrobust.registry import Registry, check_options

MODELS: Registry[nn.Module] = Registry("model")
MODELS.register_family(
    monai_nets.PREFIX,
    monai_nets.resolve,
    help="any network class of monai.networks.nets (pip install 'medrobust[monai]'), e.g. monai:DenseNet121, "
    "monai:EfficientNetBN, monai:BasicUNet, monai:DynUNet, monai:SwinUNETR; its arguments in model.options",
)


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


@MODELS.register("mrnet", help="MRNet: 2D CNN per slice, average pool, max over slices, linear (volumes N×C×S×H×W)")
def mrnet(
    *,
    in_channels: int,
    num_outputs: int,
    backbone: str = "small_cnn",
    width: int = 16,
    norm: str = "batch",
    stem: str = "cifar",
    spatial_dims: int = 3,
) -> nn.Module:
    """MRNet (see :class:`MRNet`); ``spatial_dims`` must be 3 (inputs are slice stacks)."""
    if spatial_dims != 3:
        raise ConfigError("model 'mrnet' takes volumes (N, C, S, H, W); use it with a 3D dataset such as mrnet")
    return MRNet(in_channels, num_outputs, backbone=backbone, width=width, norm=norm, stem=stem)


@MODELS.register("unet", dense=True, help="small U-Net (0.47 M parameters at width 16, depth 3): segmentation/heatmaps")
def unet(
    *, in_channels: int, num_outputs: int, width: int = 16, depth: int = 3, norm: str = "batch", spatial_dims: int = 2
) -> nn.Module:
    """U-Net with per-pixel outputs (see :class:`UNet`)."""
    return UNet(in_channels, num_outputs, width=width, depth=depth, norm=norm, spatial_dims=spatial_dims)


def takes_image_size(name: str) -> bool:
    """Whether model ``name`` is built for a given input size (its factory takes ``image_size``: MONAI's)."""
    return "image_size" in inspect.signature(MODELS.get(name).factory).parameters


@MODELS.register(
    "centernet", dense=True, help="ResNet-FPN with CenterNet heads (0.34 M parameters at width 16): detection"
)
def centernet(
    *, in_channels: int, num_outputs: int, width: int = 16, fpn_width: int | None = None, norm: str = "batch",
    spatial_dims: int = 2,
) -> nn.Module:  # fmt: skip
    """Anchor-free detector for ``num_outputs − 4`` classes (see :class:`CenterNetFPN`); 2D only."""
    if spatial_dims != 2:
        raise ConfigError("model 'centernet' takes 2D images; there is no 3D detector")
    if num_outputs <= BOX_CHANNELS:
        raise ConfigError(f"model 'centernet' needs num_outputs = classes + 4 (a detection task), got {num_outputs}")
    return CenterNetFPN(in_channels, num_outputs - BOX_CHANNELS, width=width, fpn_width=fpn_width, norm=norm)


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
        **options: model options (``width``, ``norm``, ``stem``, ``spatial_dims``; for ``monai:<Name>`` the
            constructor's arguments and ``image_size``, the input's spatial size).
    """
    if in_channels < 1 or num_outputs < 1:
        raise ConfigError(f"in_channels and num_outputs must be ≥ 1, got {in_channels} and {num_outputs}")
    entry = MODELS.get(name)
    check_options(f"model {name!r}", entry.factory, {"in_channels": 1, "num_outputs": 1, **options})
    return Normalize(entry.factory(in_channels=in_channels, num_outputs=num_outputs, **options), mean, std)


__all__ = ["MODELS", "CenterNetFPN", "MRNet", "Normalize", "ResNet18", "SmallCNN", "UNet", "create", "takes_image_size"]
