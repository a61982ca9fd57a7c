"""A compact anchor-free detector: ResNet backbone, feature pyramid, CenterNet heads (one tensor out).

Zhou, Wang & Krähenbühl, "Objects as Points", arXiv 1904.07850 (CenterNet heads: a class heatmap whose peaks are
box centres, and per-pixel box size and sub-pixel centre offset); Lin et al., "Feature Pyramid Networks for
Object Detection", CVPR 2017 (top-down pathway with lateral 1×1 connections). The backbone is a stack of
:class:`~medrobust.models.resnet.BasicBlock` stages at strides 1, 2, 4, 8; the pyramid merges them down to stride
1, so every pixel can hold a centre (the phantom's lesions span a few pixels). The output is one map
``(N, K + 4, H, W)``, decoded by :class:`~medrobust.tasks.detection.DetectionTask` (why not MONAI's RetinaNet:
docs/design.md).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medrobust.errors import ConfigError
from medrobust.models.layers import conv, norm_layer
from medrobust.models.resnet import BasicBlock

BOX_CHANNELS = 4  # centre offset (dx, dy) and log size (log w, log h)
PRIOR = 0.01  # initial heatmap probability (focal-loss prior, Lin et al. 2017)


def _head(c_in: int, c_out: int, bias: float = 0.0) -> nn.Sequential:
    last = nn.Conv2d(c_in, c_out, 1)
    nn.init.constant_(cast(Tensor, last.bias), bias)  # a Conv2d built with bias=True has one
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, padding=1), nn.ReLU(), last)


class CenterNetFPN(nn.Module):
    """ResNet-FPN backbone with CenterNet heads for ``K`` classes.

    Args:
        in_channels: image channels ``C``.
        num_classes: ``K``.
        width: channels of the first stage; the stages have ``width·(1, 2, 4, 8)``.
        fpn_width: channels of the pyramid and the heads (default ``2·width``).
        norm: ``"batch"``, ``"group"`` or ``"none"``.

    Shape:
        - x: ``(N, C, H, W)`` (already normalised; wrap with :class:`~medrobust.models.Normalize`).
        - output: ``(N, K + 4, H, W)``: class heatmap logits, then centre offset (x, y) and log box size (w, h).
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 16, fpn_width: int | None = None, norm: str = "batch"
    ) -> None:
        super().__init__()
        if width < 1 or num_classes < 1:
            raise ConfigError(f"the detector needs width >= 1 and num_classes >= 1, got {width} and {num_classes}")
        fpn = fpn_width or 2 * width
        widths = [width * m for m in (1, 2, 4, 8)]
        self.stem = nn.Sequential(conv(2)(in_channels, width, 3, padding=1, bias=False), norm_layer(norm, width, 2),
                                  nn.ReLU())  # fmt: skip
        self.stages = nn.ModuleList(
            BasicBlock(widths[max(i - 1, 0)], c, 1 if i == 0 else 2, norm, 2) for i, c in enumerate(widths)
        )
        self.lateral = nn.ModuleList(nn.Conv2d(c, fpn, 1) for c in widths)
        self.smooth = nn.Sequential(nn.Conv2d(fpn, fpn, 3, padding=1), nn.ReLU())
        self.heatmap = _head(fpn, num_classes, bias=-math.log((1 - PRIOR) / PRIOR))
        self.box = _head(fpn, BOX_CHANNELS)

    def forward(self, x: Tensor) -> Tensor:
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        top = self.lateral[-1](features[-1])
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            top = lateral(feature) + F.interpolate(top, size=feature.shape[2:], mode="nearest")
        p1 = self.smooth(top)
        return torch.cat([self.heatmap(p1), self.box(p1)], dim=1)
