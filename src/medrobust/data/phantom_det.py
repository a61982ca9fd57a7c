"""``phantom-ct-det``: lesion detection on the CT phantom, 0 to ``k`` lesions per slice with bounding boxes.

The slices come from the ``phantom-ct`` simulator (:func:`medrobust.data.phantom.simulate_slices`: same anatomy
model, rendering, CT physics and window) with several lesions per slice, each placed clear of the others. Every
sample ``i`` of split ``s`` draws its lesion count (uniform on ``0..max_lesions``) and kinds (solid or
ground-glass, equally likely) from a generator seeded by ``(seed, s, i)`` and a salt of its own, so the splits
are disjoint and the same arguments give identical arrays. Lesions are larger than in ``phantom-ct`` by default
(:data:`DETECTION_LESIONS`) so that their boxes span a few pixels at 64 pixels per side.

Targets are boxes ``(N, K, 5)``: rows ``(x0, y0, x1, y1, class)`` in pixels (``x`` = column, pixel ``j`` spans
``[j, j + 1)``, as in COCO), class 0 solid and 1 ground-glass, padded with rows of −1.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data import phantom as P
from medrobust.data.base import SPLITS, ArrayDataset, DatasetInfo
from medrobust.data.phantom_anatomy import FOV_MM, GGO, SOLID, LesionSpec
from medrobust.data.registry import DATASETS
from medrobust.errors import ConfigError
from medrobust.runtime import num_threads

DETECTION_LESIONS = LesionSpec(solid_radius=(8.0, 20.0), ggo_radius=(10.0, 24.0))
CLASS_NAMES = ("solid", "ground-glass")
DEFAULT_N = {"train": 1000, "val": 250, "test": 500}
VERSION = 1  # bump when the generator changes, so stale cache files are not reused
_SALT = 0xDE7EC7
_KEYS = ("image", "boxes", "mask")


def lesion_kinds(n: int, seed: int, split: str, max_lesions: int) -> list[list[int]]:
    """Per sample the kinds of its lesions (1 solid, 2 ground-glass); the count is uniform on ``0..max_lesions``."""
    split_id = SPLITS.index(split)
    out = []
    for i in range(n):
        rng = np.random.default_rng([_SALT, seed, split_id, i])
        out.append([int(k) for k in rng.choice([SOLID, GGO], size=int(rng.integers(0, max_lesions + 1)))])
    return out


def simulate_detection(
    n: int,
    size: int = 64,
    seed: int = 0,
    *,
    split: str = "train",
    max_lesions: int = 3,
    dose: float = P.DEFAULT_DOSE,
    window: str = "ramp",
    lesions: LesionSpec = DETECTION_LESIONS,
) -> dict[str, NDArray[Any]]:
    """Simulate ``n`` slices with 0..``max_lesions`` lesions each (pure function: same arguments, same arrays).

    Returns:
        ``image`` uint8 ``(n, 1, S, S)``, ``boxes`` float32 ``(n, max_lesions, 5)`` (see the module docstring) and
        ``mask`` uint8 ``(n, S, S)`` (union of the lesions).
    """
    P.check_options(n, size, seed, split, "binary", dose, window)
    if not isinstance(max_lesions, int) or max_lesions < 1:
        raise ConfigError(f"phantom-ct-det max_lesions must be an integer >= 1, got {max_lesions!r}")
    kinds = lesion_kinds(n, seed, split, max_lesions)
    split_id = SPLITS.index(split)
    parts = []
    with num_threads(1):  # many small ops: threads gain little (see phantom.simulate)
        for start in range(0, n, P.CHUNK):
            stop = min(start + P.CHUNK, n)
            rngs = [np.random.default_rng([_SALT + 1, seed, split_id, i]) for i in range(start, stop)]
            part = P.simulate_slices(rngs, kinds[start:stop], size, dose, window, None, lesions, max_lesions)
            parts.append({key: part[key] for key in _KEYS})
    return {key: np.concatenate([p[key] for p in parts]) for key in _KEYS}


@DATASETS.register(
    "phantom-ct-det", task_kind="detection", embedded=True,
    help="simulated chest-CT slices: 0-k lesion boxes (solid / ground-glass)",
)  # fmt: skip
def phantom_ct_det(
    *,
    split: str = "train",
    root: str | None = None,
    size: int = 64,
    n: int | None = None,
    max_lesions: int = 3,
    iou: float = 0.5,
    score: float = 0.3,
    dose: float = P.DEFAULT_DOSE,
    window: str = "ramp",
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> ArrayDataset:
    """Lesion detection (boxes of solid nodules and ground-glass opacities) on simulated chest-CT slices.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: cache folder (default ``$MEDROBUST_CACHE`` or ``~/.cache/medrobust``).
        size: image side (28, 32, 64, 128).
        n: samples; default 1000 / 250 / 500.
        max_lesions: ``k``: each slice holds 0..k lesions (uniform).
        iou, score: the task predicate: every true lesion is found by a detection of its class with IoU ≥ ``iou``
            and score ≥ ``score``.
        dose, window, seed, cache: as for ``phantom-ct``.
        progress: unused (kept for the common dataset options); generation runs in chunks.

    Returns:
        The split; targets are float32 boxes; ``extras`` holds the lesion ``mask`` ``(N, S, S)``.

    Shape:
        images uint8 ``(N, 1, S, S)``; targets ``(N, max_lesions, 5)``.
    """
    del progress
    n = DEFAULT_N.get(split, 0) if n is None else n
    params = {"size": size, "n": n, "max_lesions": max_lesions, "dose": float(dose), "window": window, "seed": seed,
              "split": split, "version": VERSION}  # fmt: skip
    path = P.cache_dir(root) / "phantom-ct-det" / ("_".join(f"{k}{v}" for k, v in params.items()) + ".npz")
    arrays = P.read_cache(path, n, size, _KEYS) if cache and path.exists() else None
    if arrays is None:
        arrays = simulate_detection(n, size, seed, split=split, max_lesions=max_lesions, dose=dose, window=window)
        if cache:
            P.write_cache(path, arrays)
    task = {"iou": float(iou), "score": float(score)}
    info = DatasetInfo("phantom-ct-det", "detection", 1, (size, size), len(CLASS_NAMES), CLASS_NAMES, split,
                       {**params, "lesions": asdict(DETECTION_LESIONS), "fov_mm": FOV_MM, "pixel_mm": FOV_MM / size,
                        "cache_file": str(path) if cache else None, "task": task})  # fmt: skip
    return ArrayDataset(arrays["image"], arrays["boxes"], info, {"mask": arrays["mask"]})
