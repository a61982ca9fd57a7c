"""Object detection with CenterNet outputs: training loss, predicate "all lesions found, no false alarm", COCO mAP.

The model (e.g. :class:`~medrobust.models.detector.CenterNetFPN`) outputs one map ``(N, K + 4, H, W)`` at the
image's resolution: ``K`` class heatmap logits whose local maxima are box centres, then the centre's sub-pixel
offset ``(dx, dy)`` and the log box size ``(log w, log h)`` at each pixel (Zhou et al., "Objects as Points",
arXiv 1904.07850). The loss is CenterNet's: the penalty-reduced focal loss on Gaussian target heatmaps (α = 2,
β = 4) divided by the number of objects, plus the L1 loss of offset and log size at the true centres; its input
gradient drives the attacks. Decoding keeps the 3×3 local maxima of the sigmoid heatmaps, the ``max_dets``
highest, as boxes ``(x0, y0, x1, y1)`` in pixels (pixel ``j`` spans ``[j, j + 1)``); no NMS is needed.

The predicate (``correct``) is "every true lesion is found and nothing else is": some detection of its class has
IoU ≥ ``iou`` and score ≥ ``score``, and every detection with score ≥ ``score`` finds a true box. Without the
second half a lesion-free image could never be wrong (no attack, no margin gradient). AMAT's loss-defined
predicate "loss ≤ τ" is :class:`~medrobust.methods.loss_threshold.LossPredicate` over this task. Metrics: COCO
mAP@0.5:0.95, mAP@0.5 and mAP@0.75 (:func:`~medrobust.metrics.detection.coco_map`, checked against pycocotools),
the lesion sensitivity at ``fppi`` false positives per image, and the predicate rate ``accuracy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medrobust.errors import ConfigError, DataError
from medrobust.metrics import detection as D

BOX_CHANNELS = 4
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0  # CenterNet's focal-loss exponents
SIGMA_PER_SIZE = 1 / 6  # Gaussian width of a target peak per √(w·h) of its box
MIN_SIGMA = 0.5  # pixels


@dataclass(frozen=True)
class DetectionTask:
    """Per-sample CenterNet loss, "all found, no false alarm" predicate and COCO metrics for ``K`` box classes.

    Args:
        num_classes: ``K``.
        class_names: optional names, one per class.
        iou: IoU a detection needs to find a true box (predicate and sensitivity use it).
        score: score a detection needs to count in the predicate.
        fppi: false positives per image of the reported sensitivity.
        max_dets: detections kept per image (COCO's 100).
        box_weight: weight of the offset and log-size L1 loss.

    Shape:
        - output: ``(N, K + 4, H, W)``: heatmap logits, offset (x, y), log size (w, h).
        - target: ``(N, G, 5)`` float rows ``(x0, y0, x1, y1, class)`` in pixels; rows with class −1 are padding.
    """

    num_classes: int = 2
    class_names: tuple[str, ...] = ()
    iou: float = 0.5
    score: float = 0.3
    fppi: float = 1.0
    max_dets: int = 100
    box_weight: float = 1.0
    kind: str = "detection"

    def __post_init__(self) -> None:
        if self.kind != "detection":
            raise ConfigError(f"DetectionTask has kind 'detection', got {self.kind!r}")
        if self.num_classes < 1:
            raise ConfigError(f"detection needs at least 1 class, got {self.num_classes}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        for name in ("iou", "score"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"detection task: {name} must lie in (0, 1], got {getattr(self, name)}")
        if not self.fppi > 0 or self.max_dets < 1 or self.box_weight < 0:
            raise ConfigError("detection task: fppi must be > 0, max_dets >= 1 and box_weight >= 0")

    @property
    def dense(self) -> bool:
        """True: maps per sample; continuous metrics (mAP) per ε; ``accuracy`` is the predicate rate."""
        return True

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """``map`` (0.5:0.95) and ``map@0.5``."""
        return ("map", "map@0.5")

    @property
    def calibrated(self) -> bool:
        """False: no per-sample class probabilities."""
        return False

    @property
    def has_majority_rate(self) -> bool:
        """False: there is no majority class."""
        return False

    @property
    def output_dim(self) -> int:
        """Output channels: ``K`` heatmaps and 4 box channels."""
        return self.num_classes + BOX_CHANNELS

    def _check_output(self, output: Tensor) -> None:
        if output.ndim != 4 or output.shape[1] != self.output_dim:
            raise DataError(f"detection output has shape {tuple(output.shape)}; expected (N, {self.output_dim}, H, W)")

    def heatmaps(self, target: Tensor, shape: tuple[int, int]) -> Tensor:
        """Target heatmaps ``(N, K, H, W)``: per class the maximum of Gaussians with peak 1 at the centre pixels."""
        h, w = shape
        valid, _, _, px, py = _centres(target, shape)
        size = ((target[..., 2] - target[..., 0]) * (target[..., 3] - target[..., 1])).clamp(min=0).sqrt()
        sigma = (size * SIGMA_PER_SIZE).clamp(min=MIN_SIGMA)
        rows = torch.arange(h, device=target.device, dtype=torch.float32).view(1, 1, h, 1)
        cols = torch.arange(w, device=target.device, dtype=torch.float32).view(1, 1, 1, w)
        d2 = (rows - py[..., None, None]) ** 2 + (cols - px[..., None, None]) ** 2
        g = torch.exp(-d2 / (2 * sigma[..., None, None] ** 2)) * valid[..., None, None]  # (N, G, H, W)
        onehot = F.one_hot(target[..., 4].long().clamp(min=0), self.num_classes).float() * valid[..., None]
        if not target.shape[1]:
            return g.new_zeros((target.shape[0], self.num_classes, h, w))
        return (g[:, :, None] * onehot[..., None, None]).amax(dim=1)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample focal heatmap loss per object plus ``box_weight`` × mean L1 box loss ``(N,)``."""
        self._check_output(output)
        z, t = output.float(), target.float()
        heat = self.heatmaps(t, (z.shape[2], z.shape[3]))
        logits = z[:, : self.num_classes]
        pos = heat >= 1
        pos_loss = -F.logsigmoid(logits) * (1 - torch.sigmoid(logits)) ** FOCAL_ALPHA
        neg_loss = -F.logsigmoid(-logits) * torch.sigmoid(logits) ** FOCAL_ALPHA * (1 - heat) ** FOCAL_BETA
        focal = torch.where(pos, pos_loss, neg_loss).flatten(1).sum(dim=1)
        valid, cx, cy, px, py = _centres(t, (z.shape[2], z.shape[3]))
        count = valid.sum(dim=1)
        pred = _at_pixels(z[:, self.num_classes :], px, py)  # (N, G, 4)
        wanted = torch.stack([cx - px, cy - py, (t[..., 2] - t[..., 0]).clamp(min=1e-3).log(),
                              (t[..., 3] - t[..., 1]).clamp(min=1e-3).log()], dim=-1)  # fmt: skip
        box = ((pred - wanted).abs().sum(dim=-1) * valid).sum(dim=1) / count.clamp(min=1)
        return focal / count.clamp(min=1) + self.box_weight * box

    def decode(self, output: Tensor) -> Tensor:
        """Detections ``(N, D, 6)`` rows ``(x0, y0, x1, y1, score, class)``, ``D = min(max_dets, K·H·W)``, by
        descending score; non-peak rows have score 0."""
        self._check_output(output)
        z = output.float()
        h, w = z.shape[2:]
        prob = torch.sigmoid(z[:, : self.num_classes])
        peaks = prob * (prob == F.max_pool2d(prob, 3, stride=1, padding=1))
        score, flat = peaks.flatten(1).topk(min(self.max_dets, peaks[0].numel()), dim=1)
        label, pixel = flat // (h * w), flat % (h * w)
        py, px = (pixel // w).float(), (pixel % w).float()
        box = _at_pixels(z[:, self.num_classes :], px, py)
        cx, cy = px + box[..., 0], py + box[..., 1]
        half_w, half_h = (box[..., j].clamp(max=math.log(2.0 * max(h, w))).exp() / 2 for j in (2, 3))
        corners = torch.stack([(cx - half_w).clamp(0, w), (cy - half_h).clamp(0, h), (cx + half_w).clamp(0, w),
                               (cy + half_h).clamp(0, h)], dim=-1)  # fmt: skip
        return torch.cat([corners, score[..., None], label[..., None].float()], dim=-1)

    def predict(self, output: Tensor) -> Tensor:
        """The decoded detections ``(N, D, 6)``."""
        return self.decode(output)

    def _scores(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Per true box the highest score ``(N, G)`` of a detection of its class with IoU ≥ ``iou`` (0 if none,
        no gradient), and per image the highest score ``(N,)`` of a detection that finds no true box (a false
        alarm; differentiable in the output)."""
        det = self.decode(output)
        t = target.float()
        iou = D.box_iou(det[..., :4].detach(), t[..., :4])  # (N, D, G)
        hits = (iou >= self.iou) & (det[..., 5, None] == t[..., None, :, 4]) & (t[..., None, :, 4] >= 0)
        score = det[..., 4]
        best = (score.detach()[..., None] * hits).amax(dim=1) if t.shape[1] else t.new_zeros(t.shape[:2])
        return best, (score * ~hits.any(dim=2)).amax(dim=1)

    def correct(self, output: Tensor, target: Tensor) -> Tensor:
        """Bool ``(N,)``: every true box is found (same class, IoU ≥ ``iou``, score ≥ ``score``) and no detection
        with score ≥ ``score`` finds none (no confident false alarm)."""
        best, alarm = self._scores(output, target)
        return ((best >= self.score) | (target[..., 4] < 0)).all(dim=1) & (alarm < self.score)

    def margin(self, output: Tensor, target: Tensor) -> Tensor:
        """``max(score − best score of the worst-found box, false-alarm score − score)`` ``(N,)``: > 0 when wrong,
        < 0 when right. The false-alarm term is differentiable; the missed-box term is differentiated straight
        through the heatmap probability at that box's centre pixel (its detection may not exist yet)."""
        valid = target[..., 4] >= 0
        best, alarm = self._scores(output, target)
        gap = (self.score - best).masked_fill(~valid, -1.0)
        hard, worst = gap.max(dim=1)  # −1 (below any false-alarm term) without true boxes
        z = output.float()
        _, _, _, px, py = _centres(target.float(), (z.shape[2], z.shape[3]))
        label = target[..., 4].long().clamp(min=0)
        prob = torch.sigmoid(_at_pixels(z[:, : self.num_classes], px, py).gather(2, label[..., None]).squeeze(2))
        soft = prob.gather(1, worst[:, None]).squeeze(1) * valid.any(dim=1)
        return torch.maximum(hard - (soft - soft.detach()), alarm - self.score)

    def check_target(self, target: Tensor) -> None:
        """Raise :class:`DataError` unless ``target`` is finite float ``(N, G, 5)`` boxes with classes in −1..K−1."""
        if target.ndim != 3 or target.shape[2] != 5:
            raise DataError(f"detection targets must have shape (N, G, 5); got {tuple(target.shape)}")
        if not torch.is_floating_point(target) or not bool(torch.isfinite(target).all()):
            raise DataError("detection targets must be finite float rows (x0, y0, x1, y1, class)")
        label = target[..., 4]
        if bool(((label != label.round()) | (label < -1) | (label >= self.num_classes)).any()):
            raise DataError(f"detection classes must be integers in -1..{self.num_classes - 1} (-1: padding row)")
        box = target[label >= 0]
        if bool(((box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])).any()):
            raise DataError("detection boxes need x1 > x0 and y1 > y0")

    def metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """``map``, ``map@0.5``, ``map@0.75``, ``sensitivity@<fppi>fppi`` and ``accuracy`` (predicate rate)."""
        dets, truth = self.detections(outputs), ground_truth(targets)
        out = D.coco_map(dets, truth, self.num_classes, max_dets=self.max_dets)
        out[f"sensitivity@{self.fppi:g}fppi"] = D.sensitivity_at_fppi(dets, truth, self.num_classes, self.fppi,
                                                                      self.iou, self.max_dets)  # fmt: skip
        out["accuracy"] = float(self.correct(outputs, targets).double().mean())
        return out

    def detections(self, outputs: Tensor) -> list[D.Detections]:
        """Per image its decoded detections with score > 0, as NumPy arrays."""
        out = []
        for det in self.decode(outputs).detach().cpu().double().numpy():
            det = det[det[:, 4] > 0]
            out.append(D.Detections(det[:, :4], det[:, 5].astype("int64"), det[:, 4]))
        return out


def ground_truth(targets: Tensor) -> list[D.Detections]:
    """Per image its true boxes (padding rows dropped) as :class:`~medrobust.metrics.detection.Detections`."""
    out = []
    for t in targets.detach().cpu().double().numpy():
        t = t[t[:, 4] >= 0]
        out.append(D.Detections(t[:, :4], t[:, 4].astype("int64"), np.ones(len(t))))
    return out


def _centres(target: Tensor, shape: tuple[int, int]) -> tuple[Tensor, ...]:
    """Validity ``(N, G)`` (float), box centres ``cx, cy`` and the centre pixels ``px, py`` (float, in the map)."""
    h, w = shape
    valid = (target[..., 4] >= 0).float()
    cx, cy = (target[..., 0] + target[..., 2]) / 2, (target[..., 1] + target[..., 3]) / 2
    return valid, cx, cy, cx.floor().clamp(0, w - 1), cy.floor().clamp(0, h - 1)


def _at_pixels(maps: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Values ``(N, G, C)`` of ``maps`` ``(N, C, H, W)`` at pixels ``(px, py)`` ``(N, G)`` (float indices)."""
    n, c, h, w = maps.shape
    index = (py.long() * w + px.long()).clamp(0, h * w - 1)
    return maps.flatten(2).gather(2, index[:, None].expand(n, c, -1)).transpose(1, 2)
