"""Rasterise the phantom's ellipses: anti-aliased, partial-volume aware, batched in torch.

Each shape is painted only inside a square window around its centre (a padded canvas with gather/scatter),
so that the many small vessels and bones of a slice cost little next to the body and lungs.

Reference: coverage by a linear ramp over the signed distance is the usual analytic anti-aliasing of vector
graphics (e.g. C. Green, "Improved alpha-tested magnification for vector textures", SIGGRAPH 2007 course).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from medrobust.data.phantom_anatomy import FOV_MM


def _coverage(shape: torch.Tensor, x: torch.Tensor, y: torch.Tensor, pixel: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Anti-aliased coverage of one ellipse per image at points ``(x, y)`` (mm) and the signed distance (< 0 inside).

    The edge is a linear ramp one pixel (or ``edge`` mm) wide; shapes smaller than a pixel are rescaled so that
    their total coverage equals their area (partial-volume effect).

    Shape:
        ``shape`` ``(B, 9)``, ``x`` and ``y`` ``(B, P)`` → ``(B, P)`` twice.
    """
    cx, cy, a, b, angle, _, _, edge = (shape[:, j, None] for j in range(8))
    cos, sin = torch.cos(angle), torch.sin(angle)
    dx, dy = x - cx, y - cy
    u, v = dx * cos + dy * sin, dy * cos - dx * sin
    level = torch.sqrt((u / a) ** 2 + (v / b) ** 2)
    rho = torch.sqrt(u**2 + v**2)
    dist = torch.where(level > 1e-6, rho - rho / level.clamp_min(1e-6), -torch.minimum(a, b))
    cover = (0.5 - dist / edge.clamp_min(pixel)).clamp(0, 1)
    area = cover.sum(dim=1, keepdim=True) * pixel**2
    return cover * (torch.pi * a * b / area.clamp_min(1e-9)).clamp(max=1.0), dist


def _windows(shapes: torch.Tensor, size: int) -> tuple[list[int], int]:
    """Half-width (pixels) of a window holding each row's shape in every image, and the canvas padding."""
    pixel = FOV_MM / size
    reach = shapes[:, :, 2:4].amax(dim=2) + shapes[:, :, 7]
    halves = [int(h) + 2 for h in torch.ceil(reach.amax(dim=0) / pixel).tolist()]
    return halves, max(halves)


def render(shapes: torch.Tensor, lesion: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    """Paint ellipse rows (see :mod:`~medrobust.data.phantom_anatomy`) in order onto an air background (−1000 HU).

    Args:
        shapes: rows ``(cx, cy, a, b, angle, value, additive, edge, lung)`` per image, padded with no-op rows.
        lesion: which rows belong to the lesion.
        size: image side ``S`` over the 360 mm field of view.

    Returns:
        HU image ``(B, S, S)``, lung-field mask and lesion mask (bool ``(B, S, S)``).

    Shape:
        ``shapes`` ``(B, K, 9)``, ``lesion`` ``(B, K)``.
    """
    n, pixel = shapes.shape[0], FOV_MM / size
    halves, pad = _windows(shapes, size)
    side = size + 2 * pad
    hu = torch.full((n, side * side), -1000.0)
    lung = torch.zeros((n, side * side))
    mask = torch.zeros((n, side * side), dtype=torch.bool)
    for k, half in enumerate(halves):
        row = shapes[:, k]
        offsets = torch.arange(-half, half + 1)
        center = torch.round(row[:, [1, 0]] / pixel + (size - 1) / 2).long()  # (row, col) pixel of the centre
        rows = (center[:, 0, None, None] + offsets[None, :, None]).expand(-1, -1, 2 * half + 1).reshape(n, -1)
        cols = (center[:, 1, None, None] + offsets[None, None, :]).expand(-1, 2 * half + 1, -1).reshape(n, -1)
        index = (rows + pad) * side + cols + pad
        cover, dist = _coverage(row, (cols - (size - 1) / 2) * pixel, (rows - (size - 1) / 2) * pixel, pixel)
        value, additive, flag = (row[:, j, None] for j in (5, 6, 8))
        old = hu.gather(1, index)
        hu.scatter_(1, index, torch.where(additive > 0, old + value * cover, old + (value - old) * cover))
        keep = (flag < 0) | (cover < 0.5)
        lung.scatter_(1, index, torch.where(keep, lung.gather(1, index), flag))
        mask.scatter_(1, index, mask.gather(1, index) | (lesion[:, k, None] & (dist <= 0)))
    crop = (slice(None), slice(pad, pad + size), slice(pad, pad + size))
    return hu.view(n, side, side)[crop], lung.view(n, side, side)[crop] > 0, mask.view(n, side, side)[crop]


def stack_rows(rows: list[NDArray[np.float64]]) -> torch.Tensor:
    """Stack each image's shape rows into ``(B, K, 9)``, padding with rows that change nothing."""
    no_op = np.array([0, 0, 1, 1, 0, 0, 1, 0, -1], dtype=np.float64)  # adds 0 HU, keeps the lung label
    k = max(len(r) for r in rows)
    return torch.tensor(np.stack([np.vstack([r, np.tile(no_op, (k - len(r), 1))]) for r in rows]), dtype=torch.float32)
