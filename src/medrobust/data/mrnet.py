"""MRNet knee MRI (Stanford; Bien et al., "Deep-learning-assisted diagnosis for knee magnetic resonance imaging",
PLoS Medicine 2018) read from its release folder.

Layout: ``{train,valid}/{axial,coronal,sagittal}/NNNN.npy`` — one uint8 volume ``(S, 256, 256)`` per exam and
plane, with a slice count ``S`` that varies between exams — and headerless label files
``{train,valid}-{abnormal,acl,meniscus}.csv`` with rows ``id,label``. medrobust resamples every volume to a fixed
``(slices, size, size)`` so that a split is one array ``(N, 1, slices, size, size)``.

MRNet publishes only ``train`` and ``valid``: medrobust's ``val`` split is a seeded fraction of the ``train``
exams (the same for every plane and task, so plane models can be fused on it) and ``test`` is the official
``valid`` set.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.imageio import BadFiles
from medrobust.data.registry import DATASETS
from medrobust.data.sampling import stratified_subset
from medrobust.errors import ConfigError, DataError

PLANES = ("axial", "coronal", "sagittal")
TASKS = ("abnormal", "acl", "meniscus")
CLASS_NAMES = {
    "abnormal": ("normal", "abnormal"),
    "acl": ("no ACL tear", "ACL tear"),
    "meniscus": ("no meniscal tear", "meniscal tear"),
}


def read_labels(path: Path) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Case ids and 0/1 labels of a headerless ``id,label`` CSV; one-line :class:`DataError` naming the file."""
    if not path.is_file():
        raise DataError(f"mrnet: label file {path} not found; pass --data-root the MRNet folder (MRNet-v1.0)")
    ids: list[int] = []
    labels: list[int] = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        case, label = _row(path, line_no, line)
        ids.append(case)
        labels.append(label)
    if not ids:
        raise DataError(f"{path}: no labelled cases")
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: case ids repeat (e.g. {next(i for i in ids if ids.count(i) > 1)})")
    return np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def _row(path: Path, line_no: int, line: str) -> tuple[int, int]:
    fields = [f.strip() for f in line.split(",")]
    try:
        if len(fields) != 2:
            raise ValueError
        case, label = int(fields[0]), float(fields[1])
    except ValueError:
        raise DataError(f"{path}:{line_no}: expected 'id,label' (integers), got {line.strip()!r}") from None
    if label not in (0.0, 1.0):
        raise DataError(f"{path}:{line_no}: label {fields[1]} is not 0 or 1")
    return case, int(label)


def read_volume(path: Path) -> NDArray[np.uint8]:
    """One ``(S, H, W)`` uint8 volume; missing, truncated or mis-shaped files raise a :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{path}: volume is missing (its case id is in the label CSV)")
    try:
        vol = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise DataError(f"{path}: truncated or corrupt .npy ({str(err).splitlines()[0]}); re-copy the file") from None
    if vol.dtype != np.uint8 or vol.ndim != 3 or min(vol.shape) < 1:
        raise DataError(f"{path}: volume is {vol.dtype} {vol.shape}; expected uint8 (S, H, W) as in MRNet")
    return vol


def resample(vol: NDArray[np.uint8], slices: int, size: int) -> NDArray[np.uint8]:
    """Resize ``(S, H, W)`` to ``(slices, size, size)``: bilinear (antialiased) in plane, linear across slices with
    the first and last slices kept.

    Shape:
        ``(S, H, W)`` uint8 → ``(slices, size, size)`` uint8.
    """
    x = torch.from_numpy(vol).float().unsqueeze(1)  # (S, 1, H, W)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x.reshape(x.shape[0], size * size).T.unsqueeze(0)  # (1, size², S)
    if x.shape[-1] != slices:
        if x.shape[-1] == 1:
            x = x.expand(1, size * size, slices)
        else:
            x = F.interpolate(x, size=slices, mode="linear", align_corners=True)
    out = x[0].T.reshape(slices, size, size)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


def _stamp(folder: Path, ids: tuple[int, ...]) -> tuple[tuple[int, int] | None, ...]:
    """(mtime, size) of each volume file, so that a changed file is never served from the cache."""
    stats: list[tuple[int, int] | None] = []
    for case in ids:
        try:
            st = (folder / f"{case:04d}.npy").stat()
            stats.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append(None)
    return tuple(stats)


@functools.lru_cache(maxsize=3)  # train, val and test of one plane: the three tasks share the volumes
def _volumes(
    folder: str, ids: tuple[int, ...], slices: int, size: int, skip_bad: bool, stamp: tuple[Any, ...]
) -> tuple[Any, ...]:
    vols, kept, bad = [], [], BadFiles("mrnet", skip_bad)
    for case in ids:
        path = Path(folder) / f"{case:04d}.npy"
        try:
            vols.append(resample(read_volume(path), slices, size))
            kept.append(case)
        except DataError as err:
            bad.fail(path, str(err).removeprefix(f"{path}: "))  # raises unless skip_bad
    if not vols:
        raise DataError(f"mrnet: no readable volume in {folder}")
    return np.stack(vols)[:, None], tuple(kept), tuple(bad.items)


def _split_ids(ids: NDArray[np.int64], split: str, val_fraction: float, seed: int) -> NDArray[np.bool_]:
    """Mask of the exams of ``split`` among the ``train`` exams (a seeded permutation of the sorted ids)."""
    order = np.sort(ids)
    perm = torch.randperm(len(order), generator=torch.Generator().manual_seed(seed)).numpy()
    n_val = round(val_fraction * len(order))
    val_ids = set(order[perm[:n_val]].tolist())
    in_val = np.array([i in val_ids for i in ids.tolist()], dtype=bool)
    return in_val if split == "val" else ~in_val


def _check(plane: str, task: str, slices: int, size: int, val_fraction: float) -> None:
    if plane not in PLANES:
        raise ConfigError(f"mrnet: unknown plane {plane!r}; use one of {', '.join(PLANES)}")
    if task not in TASKS:
        raise ConfigError(f"mrnet: unknown task {task!r}; use one of {', '.join(TASKS)}")
    if slices < 1 or size < 1:
        raise ConfigError(f"mrnet: slices and size must be >= 1, got {slices} and {size}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"mrnet: val_fraction must lie in (0, 1), got {val_fraction}")


@DATASETS.register(
    "mrnet",
    task_kind="binary",
    help="MRNet knee MRI (plane=axial/coronal/sagittal, task=abnormal/acl/meniscus), volumes 1×S×H×W, --data-root",
    files=(*(f"{s}-{t}.csv" for s in ("train", "valid") for t in TASKS), "train", "valid"),
)
def mrnet(
    *,
    split: str = "train",
    root: str | None = None,
    plane: str = "sagittal",
    task: str = "abnormal",
    slices: int = 32,
    size: int = 128,
    val_fraction: float = 0.2,
    seed: int = 0,
    n: int | None = None,
    skip_bad: bool = False,
) -> ArrayDataset:
    """One plane and one task of MRNet as a binary dataset of fixed-shape volumes.

    Args:
        split: ``"train"`` and ``"val"`` partition MRNet's ``train`` exams (seeded, ``val_fraction`` to val);
            ``"test"`` is MRNet's official ``valid`` set.
        root: the MRNet folder holding ``train/``, ``valid/`` and the six CSVs; required.
        plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        task: the label: ``"abnormal"``, ``"acl"`` or ``"meniscus"``.
        slices: slice count every volume is resampled to (linear; the slice count of MRNet series varies between exams).
        size: in-plane side every slice is resampled to (bilinear, antialiased; MRNet has 256).
        val_fraction: share of the ``train`` exams held out as ``val``.
        seed: seed of that hold-out and of the ``n`` subset.
        n: keep a seeded stratified subset of ``n`` exams of the split (quick runs).
        skip_bad: skip (and count) unreadable or missing volumes instead of stopping; the count and the first files
            are in the metadata (``skipped_bad``, ``skipped_files``) and one line goes to stderr.

    Shape:
        images ``(N, 1, slices, size, size)`` uint8; targets ``(N,)`` 0/1; ``extras["case_id"]`` ``(N,)``.
    """
    _check(plane, task, slices, size, val_fraction)
    if root is None:
        raise DataError("mrnet: no data root given; pass --data-root the MRNet folder (medrobust does not download)")
    source = "valid" if split == "test" else "train"
    ids, labels = read_labels(Path(root) / f"{source}-{task}.csv")
    if split != "test":
        keep = _split_ids(ids, split, val_fraction, seed)
        ids, labels = ids[keep], labels[keep]
    if n is not None:
        keep_n = stratified_subset(labels, n, seed)
        ids, labels = ids[keep_n], labels[keep_n]
    folder = Path(root) / source / plane
    key = tuple(ids.tolist())
    images, kept, bad = _volumes(str(folder), key, slices, size, skip_bad, _stamp(folder, key))
    labels = labels[np.isin(ids, kept)]
    extra: dict[str, Any] = {
        "path": str(Path(root)),
        "plane": plane,
        "label": task,
        "positive_class": 1,
        "resample": f"every volume resampled to {slices} slices (linear, end slices kept) of {size}x{size} "
        "(bilinear, antialiased); the original slice count varies per exam",
        "split_rule": f"MRNet has only train/valid: val = a seeded {val_fraction:g} of the train exams by case id "
        f"(seed {seed}; the same for every plane and task; MRNet gives no patient ids), train = the "
        "rest, test = the official valid set",
    }
    if n is not None:
        extra["subset"] = f"seeded stratified subset of {n} (seed {seed})"
    bad_files = BadFiles("mrnet", skip_bad)
    bad_files.items = list(bad)
    bad_files.report(extra, split)
    info = DatasetInfo("mrnet", "binary", 1, (slices, size, size), 2, CLASS_NAMES[task], split, extra)
    return ArrayDataset(images, labels, info, extras={"case_id": np.asarray(kept, dtype=np.int64)})
