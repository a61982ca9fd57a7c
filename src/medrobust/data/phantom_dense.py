"""Dense tasks on the embedded CT phantom: ``phantom-ct-seg`` (lesion masks) and ``phantom-ct-landmark``.

Both are views of the ``phantom-ct`` splits (:mod:`medrobust.data.phantom`, same simulator, seeds and cache),
with the simulator's own ground truth as targets: the lesion mask (every lesion covers at least its centre
pixel) and the lesion and spine (vertebral body) centres in sub-pixel ``(row, col)`` coordinates.

Lesion-free images (half of ``phantom-ct``): by default both datasets keep only lesion-bearing images, so ``n``
counts lesion images and they are the first ``n`` lesion images of a ``phantom-ct`` split of ``2n`` (the default
``n`` reuses the cached default ``phantom-ct`` splits). Reasons: a lesion-free image has no lesion centre (its
landmark is undefined), and its empty mask makes Dice a detection score (1 for an empty prediction, 0 for any
false-positive pixel), which would mix two tasks in one Dice curve. ``lesion_free="keep"`` keeps them for
segmentation (Dice convention: empty vs empty = 1); ``landmarks="spine"`` uses every image with the spine
centre as the only landmark.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.phantom import DEFAULT_DOSE, DEFAULT_N, FOV_MM, phantom_ct
from medrobust.data.registry import DATASETS
from medrobust.errors import ConfigError

LESION_FREE = ("drop", "keep")
LANDMARK_SETS = {"lesion+spine": ("lesion centre", "spine centre"), "spine": ("spine centre",)}


def _source(
    split: str, root: str | None, n: int | None, drop: bool, options: dict[str, Any]
) -> tuple[ArrayDataset, NDArray[np.int64]]:
    """The underlying ``phantom-ct`` split and the indices of the samples to use."""
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ConfigError(f"phantom-ct dense datasets need n >= 1 samples, got {n!r}")
    want = n if n is not None else DEFAULT_N.get(split, 0) // (2 if drop else 1)
    # blocks of 4 samples hold exactly 2 lesion images, so 4·⌈want/2⌉ samples hold at least ``want``
    base = phantom_ct(split=split, root=root, n=4 * -(-want // 2) if drop else want, label="binary", **options)
    keep = np.flatnonzero(base.targets.numpy() == 1) if drop else np.arange(len(base))
    return base, keep[:want].astype(np.int64)


def _info(name: str, kind: str, base: ArrayDataset, names: tuple[str, ...], extra: dict[str, Any]) -> DatasetInfo:
    size = base.info.spatial[-1]
    extra = {**base.info.extra, "pixel_mm": FOV_MM / size, **extra}
    return DatasetInfo(name, kind, 1, base.info.spatial, len(names), names, base.info.split, extra)


def _extras(base: ArrayDataset, keep: NDArray[np.int64]) -> dict[str, NDArray[Any]]:
    out = {k: np.asarray(v)[keep] for k, v in base.extras.items()}
    out["phantom_index"] = keep
    return out


@DATASETS.register(
    "phantom-ct-seg", task_kind="segmentation", embedded=True, help="simulated chest-CT slices: lesion segmentation"
)
def phantom_ct_seg(
    *,
    split: str = "train",
    root: str | None = None,
    size: int = 64,
    n: int | None = None,
    lesion_free: str = "drop",
    tau: float = 0.5,
    dose: float = DEFAULT_DOSE,
    window: str = "ramp",
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> ArrayDataset:
    """Lesion segmentation (background / lesion) of simulated chest-CT slices.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: cache folder of ``phantom-ct``.
        size: image side (28, 32, 64, 128).
        n: samples; default 1000 / 250 / 500 (``drop``) or 2000 / 500 / 1000 (``keep``).
        lesion_free: ``"drop"`` (only lesion images; see the module docstring) or ``"keep"``.
        tau: Dice threshold of the task predicate (``Dice ≥ tau``).
        dose, window, seed, cache, progress: as for ``phantom-ct``.

    Returns:
        The split; targets are uint8 masks; ``extras`` holds the ``phantom-ct`` extras of the kept samples and
        ``phantom_index`` (their index in the ``phantom-ct`` split).

    Shape:
        images uint8 ``(N, 1, S, S)``; targets ``(N, S, S)`` in {0, 1}.
    """
    if lesion_free not in LESION_FREE:
        raise ConfigError(f"phantom-ct-seg lesion_free must be 'drop' or 'keep', got {lesion_free!r}")
    options = {"size": size, "dose": dose, "window": window, "seed": seed, "cache": cache, "progress": progress}
    base, keep = _source(split, root, n, lesion_free == "drop", options)
    info = _info("phantom-ct-seg", "segmentation", base, ("background", "lesion"),
                 {"n": len(keep), "lesion_free": lesion_free, "task": {"tau": float(tau)}})  # fmt: skip
    masks = np.asarray(base.extras["mask"])[keep].astype(np.int64)
    return ArrayDataset(base.images[keep].numpy(), masks, info, _extras(base, keep))


@DATASETS.register(
    "phantom-ct-landmark", task_kind="landmark", embedded=True, help="simulated chest-CT slices: lesion/spine centres"
)
def phantom_ct_landmark(
    *,
    split: str = "train",
    root: str | None = None,
    size: int = 64,
    n: int | None = None,
    landmarks: str = "lesion+spine",
    tau: float = 2.0,
    sigma: float = 1.5,
    dose: float = DEFAULT_DOSE,
    window: str = "ramp",
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> ArrayDataset:
    """Landmark detection on simulated chest-CT slices: lesion centre and spine centre (pixels).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: cache folder of ``phantom-ct``.
        size: image side (28, 32, 64, 128).
        n: samples; default 1000 / 250 / 500 lesion images (``"lesion+spine"``) or 2000 / 500 / 1000 (``"spine"``).
        landmarks: ``"lesion+spine"`` (lesion images only) or ``"spine"`` (every image).
        tau: predicate threshold on the per-sample mean radial error, in pixels.
        sigma: width in pixels of the Gaussian target heatmaps.
        dose, window, seed, cache, progress: as for ``phantom-ct``.

    Returns:
        The split with float32 ``(N, K, 2)`` targets (``K`` = 2 or 1); errors are in pixels (``info.extra
        ["pixel_mm"]`` converts them to mm).

    Shape:
        images uint8 ``(N, 1, S, S)``; targets ``(N, K, 2)`` (row, col).
    """
    if landmarks not in LANDMARK_SETS:
        raise ConfigError(f"phantom-ct-landmark landmarks must be one of {', '.join(LANDMARK_SETS)}, got {landmarks!r}")
    options = {"size": size, "dose": dose, "window": window, "seed": seed, "cache": cache, "progress": progress}
    base, keep = _source(split, root, n, landmarks == "lesion+spine", options)
    names = LANDMARK_SETS[landmarks]
    task = {"tau": float(tau), "sigma": float(sigma)}
    info = _info("phantom-ct-landmark", "landmark", base, names, {"n": len(keep), "landmarks": landmarks, "task": task})
    points = [base.extras["center"], base.extras["spine_center"]] if len(names) == 2 else [base.extras["spine_center"]]
    targets = np.stack([np.asarray(p)[keep] for p in points], axis=1).astype(np.float32)
    return ArrayDataset(base.images[keep].numpy(), targets, info, _extras(base, keep))
