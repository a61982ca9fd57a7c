"""Random chest anatomy for the CT phantom, as a list of ellipses in Hounsfield units.

One axial slice at heart level in radiological convention (anterior up, the patient's left on the image
right, millimetres from the centre of a 360 mm field of view): body outline, subcutaneous fat, two lung fields,
mediastinum, heart, descending aorta, a thoracic vertebra (body, canal, arch, spinous process), ribs, sternum,
lung vessels (dots and short lines) and, optionally, lesions inside the lungs (one for ``phantom-ct``, up to ``k``
apart from each other for ``phantom-ct-det``): solid nodules (sharp, possibly lobulated, soft-tissue density) or
ground-glass opacities (soft-edged, a few hundred HU above the lung).

Every shape is a row ``(cx, cy, a, b, angle, value, additive, edge, lung)``: centre and semi-axes in mm,
rotation in radians, HU value that replaces (or, if ``additive``, adds to) what is below, edge width in mm for
soft shapes (0 = sharp), and what it does to the lung-field label (1 sets, 0 clears, −1 keeps).

Reference: the idea of composing a phantom from ellipses follows L. A. Shepp and B. F. Logan, "The Fourier
reconstruction of a head section", IEEE Trans. Nucl. Sci. 1974.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FOV_MM = 360.0
NONE, SOLID, GGO = 0, 1, 2
LESION_KINDS = ("none", "solid", "ground-glass")
KEEP = -1.0


@dataclass(frozen=True)
class LesionSpec:
    """Random ranges of the lesions (mm and HU); the defaults set the task's difficulty."""

    solid_radius: tuple[float, float] = (5.0, 12.0)
    solid_hu: tuple[float, float] = (-250.0, 40.0)
    ggo_radius: tuple[float, float] = (8.0, 18.0)
    ggo_delta_hu: tuple[float, float] = (200.0, 500.0)


@dataclass(frozen=True)
class Anatomy:
    """One sampled slice: its shapes, which of them form lesions, the landmarks (mm, (y, x)) and the lesion boxes.

    ``lesion_center`` is the centre of the first lesion; ``lesion_boxes`` holds one ``(kind, x0, y0, x1, y1)`` (mm)
    per lesion: the bounding box of its ellipses (main ellipse and lobules).
    """

    shapes: NDArray[np.float64]
    lesion_rows: tuple[int, ...]
    lesion_center: tuple[float, float] | None
    spine_center: tuple[float, float]
    lesion_boxes: tuple[tuple[int, float, float, float, float], ...] = ()


def _row(
    cx: float,
    cy: float,
    a: float,
    b: float,
    value: float,
    *,
    angle: float = 0.0,
    additive: bool = False,
    edge: float = 0.0,
    lung: float = 0.0,
) -> list[float]:
    return [cx, cy, a, b, angle, value, float(additive), edge, lung]


def ellipse_level(shapes: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sqrt((u/a)² + (v/b)²)`` of points in each shape's frame: < 1 inside, > 1 outside.

    Shape:
        ``shapes`` ``(M, 9)``, ``x`` and ``y`` ``(P,)`` → ``(M, P)``.
    """
    cx, cy, a, b, angle = (shapes[:, j, None] for j in range(5))
    dx, dy = x[None] - cx, y[None] - cy
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = dy * np.cos(angle) - dx * np.sin(angle)
    return np.sqrt((u / a) ** 2 + (v / b) ** 2)


def ellipse_box(rows: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """Bounding box ``(x0, y0, x1, y1)`` (mm) of the union of ellipse rows (rotated semi-axes included).

    A row rotated by ``θ`` reaches ``√(a²cos²θ + b²sin²θ)`` along x and ``√(a²sin²θ + b²cos²θ)`` along y.
    """
    r = np.asarray(rows, dtype=np.float64)
    cx, cy, a, b, angle = (r[:, j] for j in range(5))
    hx = np.hypot(a * np.cos(angle), b * np.sin(angle))
    hy = np.hypot(a * np.sin(angle), b * np.cos(angle))
    return float((cx - hx).min()), float((cy - hy).min()), float((cx + hx).max()), float((cy + hy).max())


def _body(rng: np.random.Generator) -> tuple[list[list[float]], tuple[float, float, float, float]]:
    a, b = rng.uniform(140, 165), rng.uniform(100, 122)
    cx, cy = rng.uniform(-5, 5), rng.uniform(-3, 8)
    fat = rng.uniform(6, 18)
    rows = [_row(cx, cy, a, b, rng.uniform(-115, -85)), _row(cx, cy, a - fat, b - 0.7 * fat, rng.uniform(30, 55))]
    return rows, (cx, cy, a - fat, b - 0.7 * fat)


def _lungs(rng: np.random.Generator, body: tuple[float, float, float, float]) -> list[list[float]]:
    cx, cy, a, b = body
    rows = []
    for side in (-1.0, 1.0):
        rows.append(
            _row(
                cx + side * rng.uniform(0.46, 0.52) * a,
                cy + rng.uniform(-0.12, 0.0) * b,
                rng.uniform(0.30, 0.35) * a,
                rng.uniform(0.66, 0.74) * b,
                rng.uniform(-860, -820),
                angle=side * rng.uniform(-0.2, 0.05),
                lung=1.0,
            )
        )
    return rows


def _center(rng: np.random.Generator, body: tuple[float, float, float, float]) -> list[list[float]]:
    """Mediastinum, heart and descending aorta (drawn over the lungs)."""
    cx, cy, a, b = body
    return [
        _row(
            cx + rng.uniform(-4, 4),
            cy - rng.uniform(0.1, 0.25) * b,
            rng.uniform(0.16, 0.2) * a,
            rng.uniform(0.5, 0.6) * b,
            rng.uniform(-20, 25),
        ),
        _row(
            cx + rng.uniform(0.08, 0.16) * a,
            cy + rng.uniform(0.0, 0.15) * b,
            rng.uniform(0.24, 0.3) * a,
            rng.uniform(0.34, 0.42) * b,
            rng.uniform(35, 50),
            angle=rng.uniform(-0.6, -0.2),
        ),
        _row(
            cx + rng.uniform(0.08, 0.13) * a,
            cy + rng.uniform(0.3, 0.38) * b,
            r := rng.uniform(9, 13),
            r,
            rng.uniform(35, 55),
        ),
    ]


def _spine(rng: np.random.Generator, body: tuple[float, float, float, float]) -> tuple[list[list[float]], float, float]:
    """Vertebral body, arch, canal and spinous process; returns the rows and the vertebral body centre (x, y)."""
    cx, cy, _, b = body
    x = cx + rng.uniform(-3, 3)
    canal_y = cy + b - rng.uniform(32, 38)
    radius = rng.uniform(14, 18)
    body_y = canal_y - radius - rng.uniform(7, 9)
    bone = rng.uniform(550, 800)
    rows = [
        _row(x, body_y, 1.08 * radius, radius, bone),
        _row(x, body_y, 1.08 * radius - 2.5, radius - 2.5, rng.uniform(180, 300)),
        _row(x, canal_y + 2, 13, 11, bone),
        _row(x, canal_y + 16, 3, 9, bone),
        _row(x, canal_y, 7.5, 7, rng.uniform(5, 30)),
    ]
    return rows, x, body_y


def _bones(rng: np.random.Generator, body: tuple[float, float, float, float]) -> list[list[float]]:
    """Ribs along the inner body outline and the sternum."""
    cx, cy, a, b = body
    scale = rng.uniform(0.95, 0.99)
    rows = []
    for side in (-1.0, 1.0):
        count = int(rng.integers(5, 8))
        t = np.linspace(-1.2, 1.1, count) + rng.uniform(-0.08, 0.08, count)
        tangent = np.arctan2(b * np.cos(t), -side * a * np.sin(t))
        x, y = cx + side * scale * a * np.cos(t), cy + scale * b * np.sin(t)
        size = rng.uniform((4, 2.5), (8, 4), (count, 2))
        hu, zero = rng.uniform(450, 750, count), np.zeros(count)
        rows += np.column_stack([x, y, size, tangent, hu, zero, zero, zero]).tolist()
    rows.append(_row(cx, cy - scale * b, rng.uniform(10, 14), rng.uniform(4, 6), rng.uniform(300, 500)))
    return rows


def _points_in(
    rng: np.random.Generator, lung: NDArray[np.float64], reach: float, m: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``m`` uniform points ``(x, y)`` of the lung ellipse shrunk to ``reach`` (a fraction of its axes)."""
    r, phi = reach * np.sqrt(rng.uniform(size=m)), rng.uniform(0, 2 * math.pi, m)
    cx, cy, a, b, angle = lung[:5]
    u, v = r * a * np.cos(phi), r * b * np.sin(phi)
    return cx + u * math.cos(angle) - v * math.sin(angle), cy + u * math.sin(angle) + v * math.cos(angle)


def _vessels(rng: np.random.Generator, lungs: list[list[float]]) -> list[list[float]]:
    """Vessel cross-sections (dots) and in-plane segments (short lines), thicker towards the hilum."""
    rows = []
    for lung in np.asarray(lungs):
        m = int(rng.integers(8, 16))
        hx, hy = lung[0] - 0.7 * math.copysign(lung[2], lung[0]), lung[1]
        x, y = _points_in(rng, lung, 0.9, m)
        dist = np.hypot(x - hx, y - hy) / (2 * lung[2])
        r = rng.uniform(0.7, 1.6, m) * (1.6 - np.minimum(dist, 1.0))
        length = np.where(rng.uniform(size=m) < 0.6, r, rng.uniform(4, 12, m))
        direction = np.arctan2(y - hy, x - hx) + rng.normal(0, 0.2, m)
        hu, zero = rng.uniform(-60, 50, m), np.zeros(m)
        rows += np.column_stack([x, y, length, r, direction, hu, zero, zero, zero + KEEP]).tolist()
    return rows


def _fits(
    center: tuple[float, float], radius: float, lungs: NDArray[np.float64], blockers: NDArray[np.float64]
) -> bool:
    """Whether a disc lies inside the lungs (with a 5 % margin) and clear of the ``blockers``."""
    phi = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    x = np.append(center[0] + radius * np.cos(phi), center[0])
    y = np.append(center[1] + radius * np.sin(phi), center[1])
    in_lung = (ellipse_level(lungs, x, y) < 0.95).any(axis=0).all()
    return bool(in_lung) and bool((ellipse_level(blockers, x, y) > 1.05).all())


def _place(
    rng: np.random.Generator,
    radius: float,
    lungs: NDArray[np.float64],
    blockers: NDArray[np.float64],
    reach: float,
    margin: float,
) -> tuple[tuple[float, float], float]:
    """A centre (x, y) where a lesion of ``radius`` mm (reaching ``reach`` radii, plus ``margin`` mm) fits in a
    lung field, and the radius, shrunk if no place is found."""
    while True:
        for _ in range(100):
            x, y = _points_in(rng, lungs[int(rng.integers(len(lungs)))], 0.85, 1)
            center = (float(x[0]), float(y[0]))
            if _fits(center, reach * radius + margin, lungs, blockers):
                return center, radius
        radius *= 0.8


def _lesion(
    rng: np.random.Generator,
    kind: int,
    lungs: NDArray[np.float64],
    blockers: NDArray[np.float64],
    spec: LesionSpec,
    pixel_mm: float,
) -> tuple[list[list[float]], tuple[float, float]]:
    """The lesion rows (main ellipse first) and its centre (x, y), placed wholly inside a lung field.

    Below 64 pixels per side the radii grow with the square root of the pixel size, so that lesions stay
    resolvable and the task about as hard at 28 and 32 pixels.
    """
    lo, hi = spec.solid_radius if kind == SOLID else spec.ggo_radius
    reach = 1.3 if kind == SOLID else 1.0  # lobules stick out of a solid nodule
    margin = max(3.0, 0.75 * pixel_mm)
    radius = rng.uniform(lo, hi) * max(1.0, pixel_mm / (FOV_MM / 64)) ** 0.5
    center, radius = _place(rng, radius, lungs, blockers, reach, margin)
    b, angle = radius * rng.uniform(0.7, 1.0), rng.uniform(0, math.pi)
    if kind == GGO:
        edge = rng.uniform(0.4, 0.8) * radius
        return [
            _row(*center, radius, b, rng.uniform(*spec.ggo_delta_hu), angle=angle, additive=True, edge=edge, lung=KEEP)
        ], center
    value = rng.uniform(*spec.solid_hu)
    rows = [_row(*center, radius, b, value, angle=angle, lung=KEEP)]
    for _ in range(int(rng.integers(0, 3))):  # lobulation
        phi, r = rng.uniform(0, 2 * math.pi), radius * rng.uniform(0.35, 0.6)
        x, y = center[0] + 0.75 * radius * math.cos(phi), center[1] + 0.75 * radius * math.sin(phi)
        rows.append(_row(x, y, r, r, value, lung=KEEP))
    return rows, center


def sample_anatomy(rng: np.random.Generator, kind: int | Sequence[int], spec: LesionSpec, pixel_mm: float) -> Anatomy:
    """Draw one slice from ``rng`` with lesion ``kind`` (0 none, 1 solid, 2 ground-glass) or several kinds.

    Several lesions are placed one after the other, each clear of those before it (their discs become blockers).
    """
    body_rows, body = _body(rng)
    lungs = _lungs(rng, body)
    center_rows = _center(rng, body)
    spine_rows, spine_x, spine_y = _spine(rng, body)
    bone_rows = _bones(rng, body)
    blockers = np.asarray(center_rows + spine_rows + bone_rows)
    rows = body_rows + lungs + center_rows + spine_rows + bone_rows + _vessels(rng, lungs)
    lesion_rows: list[int] = []
    centers: list[tuple[float, float]] = []
    boxes: list[tuple[int, float, float, float, float]] = []
    for k in [kind] if isinstance(kind, int | np.integer) else list(kind):
        if k == NONE:
            continue
        extra, (lx, ly) = _lesion(rng, int(k), np.asarray(lungs), blockers, spec, pixel_mm)
        lesion_rows += range(len(rows), len(rows) + len(extra))
        centers.append((ly, lx))
        boxes.append((int(k), *ellipse_box(extra)))
        x0, y0, x1, y1 = boxes[-1][1:]
        reach = 0.5 * math.hypot(x1 - x0, y1 - y0)
        blockers = np.vstack([blockers, _row(0.5 * (x0 + x1), 0.5 * (y0 + y1), reach, reach, 0.0)])
        rows += extra
    return Anatomy(np.asarray(rows, dtype=np.float64), tuple(lesion_rows), centers[0] if centers else None,
                   (spine_y, spine_x), tuple(boxes))  # fmt: skip
