"""The MRNet model: a 2D CNN applied to every slice, global average pool, max over slices, linear → logit.

Bien et al., "Deep-learning-assisted diagnosis for knee magnetic resonance imaging: development and
retrospective validation of MRNet", PLoS Medicine 15(11), 2018. The original backbone is an ImageNet-pretrained
AlexNet; medrobust uses its own small CNN or ResNet-18 trunk (no torchvision, no pretrained weights).
"""

from __future__ import annotations

from torch import Tensor, nn

from medrobust.errors import ConfigError
from medrobust.models.resnet import ResNet18
from medrobust.models.small_cnn import SmallCNN

BACKBONES = ("small_cnn", "resnet18")


def slice_trunk(backbone: str, in_channels: int, width: int, norm: str, stem: str) -> tuple[nn.Module, int]:
    """A 2D feature extractor ending in global average pooling, and its feature width.

    Shape:
        ``(B, C, H, W)`` → ``(B, F)``.
    """
    if backbone == "small_cnn":
        cnn = SmallCNN(in_channels, 1, width=width, norm=norm)
        return cnn.features, cnn.head.in_features
    if backbone == "resnet18":
        res = ResNet18(in_channels, 1, stem=stem, norm=norm, width=width)
        return nn.Sequential(res.stem, res.layers, res.pool), res.fc.in_features
    raise ConfigError(f"unknown MRNet backbone {backbone!r}; use one of {', '.join(BACKBONES)}")


class MRNet(nn.Module):
    """Per-slice 2D features, average-pooled in plane, max-pooled over slices, then one linear layer.

    Args:
        in_channels: channels per slice ``C`` (1 for MRI).
        num_outputs: logits (1 for MRNet's binary tasks).
        backbone: ``"small_cnn"`` or ``"resnet18"`` (2D, see :func:`slice_trunk`).
        width: channels of the backbone's first stage.
        norm: ``"batch"``, ``"group"``, ``"instance"`` or ``"none"`` (batch statistics pool the slices of the batch).
        stem: ResNet stem, ``"cifar"`` or ``"imagenet"``.

    Shape:
        - x: ``(N, C, S, H, W)`` (already normalised; wrap with :class:`~medrobust.models.Normalize`).
        - output: ``(N, num_outputs)``; invariant to the order of the ``S`` slices.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        backbone: str = "small_cnn",
        width: int = 16,
        norm: str = "batch",
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        self.features, dim = slice_trunk(backbone, in_channels, width, norm, stem)
        self.head = nn.Linear(dim, num_outputs)

    def slice_features(self, x: Tensor) -> Tensor:
        """Pooled 2D features of every slice. Shape: ``(N, C, S, H, W)`` → ``(N, S, F)``."""
        if x.ndim != 5:
            raise ConfigError(f"MRNet takes volumes (N, C, S, H, W); got a tensor of shape {tuple(x.shape)}")
        n, c, s, h, w = x.shape
        flat = x.transpose(1, 2).reshape(n * s, c, h, w)
        return self.features(flat).reshape(n, s, -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.slice_features(x).amax(dim=1))
