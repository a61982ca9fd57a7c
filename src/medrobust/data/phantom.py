"""``phantom-ct``: simulated chest-CT slices, generated on the fly (no download).

Each sample is a random chest slice (:mod:`medrobust.data.phantom_anatomy`) in Hounsfield units, converted to
linear attenuation, forward-projected (parallel beam), corrupted by Poisson photon noise at ``dose`` photons
per ray, reconstructed by filtered back-projection (:mod:`medrobust.data.ct_physics`), shown in the lung window
(W 1500 / L −600) and stored as uint8. Half the samples hold a lesion (solid nodule or ground-glass opacity,
one quarter each) for ``label="binary"``; a third each of none / solid / ground-glass for ``label="3class"``.

Every sample ``i`` of split ``s`` is drawn from its own generator seeded by ``(seed, s, i)``, so the splits never
share a seed and the same arguments give identical arrays. The first ``k`` samples hardly depend on ``n``: same
anatomy, labels, masks and noise; only batched float32 sums may round a rare pixel one grey level differently.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from medrobust.data import ct_physics
from medrobust.data.base import SPLITS, ArrayDataset, DatasetInfo
from medrobust.data.phantom_anatomy import FOV_MM, GGO, LESION_KINDS, NONE, SOLID, LesionSpec, sample_anatomy
from medrobust.data.phantom_render import render, stack_rows
from medrobust.data.registry import DATASETS
from medrobust.errors import ConfigError, DataError
from medrobust.runtime import num_threads

SIZES = (28, 32, 64, 128)
LABELS = ("binary", "3class")
DEFAULT_N = {"train": 2000, "val": 500, "test": 1000}
DEFAULT_DOSE = 2e4
LUNG_WINDOW = (1500.0, -600.0)  # width, level (HU)
MU_WATER = 0.0193  # 1/mm at about 70 keV
VERSION = 1  # bump when the generator changes, so stale cache files are not reused
_SALT = 0x5EED_C7
CHUNK = 128
_KEYS = ("image", "label", "label3", "mask", "lung_mask", "center", "spine_center")


def _kinds(n: int, seed: int, split_id: int, label: str) -> NDArray[np.int64]:
    """Lesion kinds, exactly balanced within each shuffled block (4 for binary: 2 none; 3 for 3-class)."""
    block = [NONE, NONE, SOLID, GGO] if label == "binary" else [NONE, SOLID, GGO]
    blocks = -(-n // len(block))
    kinds = [np.random.default_rng([_SALT + 1, seed, split_id, j]).permutation(block) for j in range(blocks)]
    return np.concatenate(kinds)[:n].astype(np.int64)


def _scan(hu: torch.Tensor, dose: float, noise_seeds: list[int], window: str, n_angles: int | None) -> torch.Tensor:
    """Project, add photon noise, reconstruct: HU ``(B, S, S)`` → reconstructed HU ``(B, S, S)``."""
    pixel = FOV_MM / hu.shape[-1]
    mu = (MU_WATER * (1 + hu / 1000)).clamp_min(0) * pixel  # attenuation per pixel length
    sino = ct_physics.radon(mu, n_angles)
    noisy = ct_physics.poisson_transmission(sino, dose, [torch.Generator().manual_seed(s) for s in noise_seeds])
    recon = ct_physics.fbp(noisy, hu.shape[-1], window) / pixel
    return 1000 * (recon / MU_WATER - 1)


def _window(hu: torch.Tensor) -> NDArray[np.uint8]:
    width, level = LUNG_WINDOW
    unit = ((hu - (level - width / 2)) / width).clamp(0, 1)
    return (unit * 255).round().to(torch.uint8).numpy()


def check_options(n: int, size: int, seed: int, split: str, label: str, dose: float, window: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if size not in SIZES:
        raise ConfigError(f"phantom-ct size must be one of {', '.join(map(str, SIZES))}, got {size}")
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"phantom-ct needs n >= 1 samples, got {n!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"phantom-ct seed must be a non-negative integer, got {seed!r}")
    if label not in LABELS:
        raise ConfigError(f"phantom-ct label must be one of {', '.join(LABELS)}, got {label!r}")
    if not dose > 0:
        raise ConfigError(f"phantom-ct dose (photons per ray) must be > 0, got {dose}")
    if window not in ct_physics.FILTERS:
        raise ConfigError(f"phantom-ct window must be one of {', '.join(ct_physics.FILTERS)}, got {window!r}")


def simulate(
    n: int,
    size: int = 64,
    seed: int = 0,
    *,
    split: str = "train",
    label: str = "binary",
    dose: float = DEFAULT_DOSE,
    window: str = "ramp",
    n_angles: int | None = None,
    lesions: LesionSpec | None = None,
    progress: bool = False,
) -> dict[str, NDArray[Any]]:
    """Simulate ``n`` noisy CT slices (pure function: same arguments → identical arrays).

    Args:
        n: number of samples.
        size: image side, one of 28, 32, 64, 128 (the field of view is always 360 mm).
        seed: base seed; each split draws from seeds disjoint from the others.
        split: ``"train"``, ``"val"`` or ``"test"``.
        label: ``"binary"`` (half without lesion) or ``"3class"`` (a third each of none / solid / ground-glass).
        dose: incident photons per ray ``I0`` (lower is noisier).
        window: FBP filter, ``"ramp"`` or ``"hann"``.
        n_angles: views over 180°; default ≈ π/2 · size.
        lesions: lesion size and contrast ranges (default :class:`LesionSpec`).
        progress: show a progress bar (on a terminal).

    Returns:
        ``image`` uint8 ``(n, 1, S, S)``; ``label`` (0 no lesion, 1 lesion) and ``label3`` (0 none, 1 solid,
        2 ground-glass) int64 ``(n,)``; ``mask`` (lesion) and ``lung_mask`` uint8 ``(n, S, S)``; ``center``
        (lesion centre, NaN without lesion) and ``spine_center`` (vertebral body) float32 ``(n, 2)`` as (row, col)
        pixels.

    Shape:
        see Returns.
    """
    check_options(n, size, seed, split, label, dose, window)
    lesions = lesions or LesionSpec()
    split_id = SPLITS.index(split)
    kinds = _kinds(n, seed, split_id, label)
    parts: list[dict[str, NDArray[Any]]] = []
    bar = tqdm(total=n, desc=f"phantom-ct {split}", unit="img", disable=not progress or not sys.stderr.isatty())
    with num_threads(1):  # many small ops: threads gain little and stall badly on shared cores (10× measured)
        for start in range(0, n, CHUNK):
            rngs = [np.random.default_rng([_SALT, seed, split_id, i]) for i in range(start, min(start + CHUNK, n))]
            chunk = [int(k) for k in kinds[start : start + len(rngs)]]
            parts.append(simulate_slices(rngs, chunk, size, dose, window, n_angles, lesions))
            bar.update(len(rngs))
    bar.close()
    arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    arrays["label3"] = kinds
    arrays["label"] = (kinds != NONE).astype(np.int64)
    return arrays


def simulate_slices(
    rngs: list[np.random.Generator],
    kinds: Sequence[int | Sequence[int]],
    size: int,
    dose: float,
    window: str,
    n_angles: int | None,
    lesions: LesionSpec,
    max_boxes: int = 0,
) -> dict[str, NDArray[Any]]:
    """Simulate one batch, one generator per sample: anatomy, rendering, scan, window, landmarks.

    Args:
        rngs: one generator per sample.
        kinds: per sample a lesion kind (0 none, 1 solid, 2 ground-glass) or a sequence of kinds (several lesions).
        size, dose, window, n_angles, lesions: as for :func:`simulate`.
        max_boxes: ``K > 0`` also returns ``boxes``, float32 ``(B, K, 5)`` rows ``(x0, y0, x1, y1, kind − 1)`` in
            pixels (pixel ``j`` spans ``[j, j + 1)``; clipped to the image), padded with rows of −1.

    Returns:
        ``image``, ``mask``, ``lung_mask``, ``center``, ``spine_center`` as in :func:`simulate` (``center``: the
        first lesion's), and ``boxes`` when ``max_boxes > 0``.
    """
    pixel = FOV_MM / size
    slices = [sample_anatomy(rng, kind, lesions, pixel) for rng, kind in zip(rngs, kinds)]
    flags = [np.isin(np.arange(len(s.shapes)), s.lesion_rows) for s in slices]
    k = max(len(f) for f in flags)
    lesion = torch.tensor(np.stack([np.pad(f, (0, k - len(f))) for f in flags]))
    hu, lung, mask = render(stack_rows([s.shapes for s in slices]), lesion, size)
    noise_seeds = [int(rng.integers(2**62)) for rng in rngs]
    image = _window(_scan(hu, dose, noise_seeds, window, n_angles))[:, None]
    landmarks = np.array([[s.lesion_center or (np.nan, np.nan), s.spine_center] for s in slices])
    landmarks = (landmarks / pixel + (size - 1) / 2).astype(np.float32)  # mm (y, x) → pixels (row, col)
    out = {
        "image": image,
        "mask": _with_center(mask.numpy(), landmarks[:, 0]),
        "lung_mask": lung.numpy().astype(np.uint8),
        "center": landmarks[:, 0],
        "spine_center": landmarks[:, 1],
    }
    if max_boxes > 0:
        out["boxes"] = np.stack([_pixel_boxes(s.lesion_boxes, max_boxes, size) for s in slices])
    return out


def _pixel_boxes(boxes: Sequence[tuple[int, float, float, float, float]], k: int, size: int) -> NDArray[np.float32]:
    """Lesion boxes in mm ``(kind, x0, y0, x1, y1)`` → ``(k, 5)`` pixel rows ``(x0, y0, x1, y1, kind − 1)``, −1 pad."""
    if len(boxes) > k:
        raise ConfigError(f"{len(boxes)} lesions in a slice but only {k} box rows")  # programming error guard
    out = np.full((k, 5), -1.0, dtype=np.float32)
    pixel = FOV_MM / size
    for j, (kind, *corners) in enumerate(boxes):
        out[j, :4] = np.clip(np.asarray(corners) / pixel + size / 2, 0, size)  # mm from the centre → [0, size]
        out[j, 4] = kind - 1
    return out


def _with_center(mask: NDArray[np.bool_], centers: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The lesion masks as uint8, each including the pixel of its centre (tiny lesions cover at least one)."""
    mask = mask.copy()
    for i, (r, c) in enumerate(centers):
        if np.isfinite(r):
            mask[i, int(np.rint(r)), int(np.rint(c))] = True
    return mask.astype(np.uint8)


def cache_dir(root: str | None = None) -> Path:
    """Folder of cached splits: ``root``, else ``$MEDROBUST_CACHE``, else ``~/.cache/medrobust``."""
    return Path(root or os.environ.get("MEDROBUST_CACHE") or Path.home() / ".cache" / "medrobust")


def read_cache(path: Path, n: int, size: int, keys: Sequence[str] = _KEYS) -> dict[str, NDArray[Any]] | None:
    """The cached arrays ``keys``, or ``None`` (with a warning) when the file is unreadable or does not match."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"phantom-ct cache file {path} is unreadable ({err}); regenerating it", stacklevel=3)
        return None
    if arrays["image"].shape != (n, 1, size, size) or any(len(a) != n for a in arrays.values()):
        warnings.warn(f"phantom-ct cache file {path} holds the wrong arrays; regenerating it", stacklevel=3)
        return None
    return arrays


def write_cache(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False) as f:
            np.savez_compressed(f, **cast(dict[str, Any], arrays))
        os.replace(f.name, path)
    except OSError as err:
        raise DataError(
            f"cannot write the phantom-ct cache {path} ({err}); set MEDROBUST_CACHE or root= to a "
            "writable folder, or pass cache=False"
        ) from None


@DATASETS.register(
    "phantom-ct", task_kind="binary", embedded=True, help="simulated chest-CT slices (no download): lesion vs none"
)
def phantom_ct(
    *,
    split: str = "train",
    root: str | None = None,
    size: int = 64,
    n: int | None = None,
    label: str = "binary",
    dose: float = DEFAULT_DOSE,
    window: str = "ramp",
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> ArrayDataset:
    """Simulated chest-CT slices with or without a lung lesion (see :func:`simulate`).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint seeds).
        root: cache folder (default ``$MEDROBUST_CACHE`` or ``~/.cache/medrobust``).
        size: image side, one of 28, 32, 64, 128.
        n: samples; default 2000 / 500 / 1000 for train / val / test.
        label: ``"binary"`` (no lesion / lesion) or ``"3class"`` (none / solid / ground-glass).
        dose: photons per ray (lower is noisier).
        window: FBP filter, ``"ramp"`` or ``"hann"``.
        seed: base seed.
        cache: read and write the generated split as an ``.npz`` in the cache folder (a corrupt file is
            regenerated with a warning).
        progress: progress bar while generating.

    Returns:
        The split; ``extras`` holds ``mask`` and ``lung_mask`` ``(N, S, S)``, ``label3`` ``(N,)``, ``center``
        (lesion, NaN if none) and ``spine_center`` ``(N, 2)`` (row, col) pixels.

    Shape:
        images uint8 ``(N, 1, S, S)``; targets ``(N,)``.
    """
    n = DEFAULT_N.get(split, 0) if n is None else n
    check_options(n, size, seed, split, label, dose, window)
    params = {
        "size": size,
        "n": n,
        "label": label,
        "dose": float(dose),
        "window": window,
        "seed": seed,
        "split": split,
        "version": VERSION,
    }
    path = cache_dir(root) / "phantom-ct" / ("_".join(f"{k}{v}" for k, v in params.items()) + ".npz")
    arrays = read_cache(path, n, size) if cache and path.exists() else None
    if arrays is None:
        arrays = simulate(n, size, seed, split=split, label=label, dose=dose, window=window, progress=progress)
        if cache:
            write_cache(path, arrays)
    binary = label == "binary"
    info = DatasetInfo(
        name="phantom-ct",
        task_kind="binary" if binary else "multiclass",
        channels=1,
        spatial=(size, size),
        num_classes=2 if binary else 3,
        class_names=("no lesion", "lesion") if binary else LESION_KINDS,
        split=split,
        extra={
            **params,
            "lesions": asdict(LesionSpec()),
            "fov_mm": FOV_MM,
            "lung_window": LUNG_WINDOW,
            "cache_file": str(path) if cache else None,
        },
    )
    extras = {key: arrays[key] for key in ("mask", "lung_mask", "label3", "center", "spine_center")}
    return ArrayDataset(arrays["image"], arrays["label" if binary else "label3"], info, extras)
