"""MedMNIST v2/v3 datasets, 2D and 3D, read from their local ``.npz`` files.

Each flag (``pathmnist``, ``chestmnist``, ``organmnist3d``, …) and size has one ``.npz`` holding
``{split}_images`` — ``(N, H, W)`` or ``(N, H, W, 3)`` uint8 for 2D, ``(N, D, H, W)`` for 3D — and
``{split}_labels`` ``(N, L)`` (Yang et al. 2023, "MedMNIST v2", Scientific Data 10:41; MedMNIST+ adds sizes 64,
128 and 224). medrobust reads local files; with ``download=True`` and the optional ``medmnist`` package
installed it fetches a missing file into the data root first (never by default, never in tests).
"""

from __future__ import annotations

import importlib
import importlib.util
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.medmnist_info import ALL_FLAGS, INFO, INFO_3D, FlagInfo, check_size, flag_info
from medrobust.data.paths import Location, data_root, register_location
from medrobust.data.registry import DATASETS
from medrobust.data.sampling import stratified_subset
from medrobust.errors import DataError, one_line

__all__ = ["ALL_FLAGS", "INFO", "INFO_3D", "FlagInfo", "flag_info", "medmnist", "npz_path"]

ZENODO = "https://zenodo.org/records/10519652"
_NO_DOWNLOAD = "medrobust does not download unless asked"


def file_name(flag: str, size: int) -> str:
    """``{flag}.npz`` for size 28, else ``{flag}_{size}.npz`` (the official names)."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def medmnist_folder(root: str | None) -> Path:
    """``root``, else ``$MEDROBUST_DATA/medmnist`` (``~/.medrobust/data/medmnist``)."""
    return Path(root).expanduser() if root is not None else data_root() / "medmnist"


def npz_path(root: str | None, flag: str, size: int) -> Path:
    """The existing ``{flag}[_{size}].npz`` in the MedMNIST folder; a one-line :class:`DataError` if missing."""
    check_size(flag, size)
    name, folder = file_name(flag, size), medmnist_folder(root)
    path = folder / name
    if not path.is_file():
        raise DataError(f"medmnist: {name} not found in {folder}; pass --data-root DIR holding it, {_how_to_get()}")
    return path


def _how_to_get() -> str:
    if importlib.util.find_spec("medmnist") is not None:
        return f"or fetch it with --set data.options.download=true ({_NO_DOWNLOAD})"
    return f"get it from {ZENODO}, or pip install medmnist and set data.options.download=true ({_NO_DOWNLOAD})"


def download_npz(root: str | None, flag: str, size: int, split: str) -> Path:
    """Fetch ``{flag}[_{size}].npz`` into the MedMNIST folder with the ``medmnist`` package (needs internet).

    Returns:
        The path of the (now present) file.
    """
    check_size(flag, size)
    folder = medmnist_folder(root)
    path = folder / file_name(flag, size)
    if path.is_file():
        return path
    try:
        package: Any = importlib.import_module("medmnist")
    except ImportError:
        raise DataError(
            "medmnist: download=true needs the medmnist package; pip install 'medrobust[medmnist]'"
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    try:
        data_class = getattr(package, package.INFO[flag]["python_class"])
        data_class(split=split, root=str(folder), download=True, size=size)
    except Exception as err:  # network, checksum, API: all end the same way for the user
        raise DataError(
            f"medmnist: downloading {path.name} into {folder} failed ({one_line(err)}); fetch it from {ZENODO}"
        ) from None
    if not path.is_file():
        raise DataError(f"medmnist: the medmnist package did not write {path}; fetch it from {ZENODO}")
    return path


def read_npz(path: Path, split: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The raw ``{split}_images`` and ``{split}_labels`` arrays of a MedMNIST ``.npz``."""
    keys = (f"{split}_images", f"{split}_labels")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                found = one_line(", ".join(npz.files)) or "none"  # member names may hold newlines
                raise DataError(f"{path}: missing key(s) {', '.join(missing)} (has {found})")
            return npz[keys[0]], npz[keys[1]]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as err:
        raise DataError(f"{path}: corrupt or truncated npz ({one_line(err)}); re-download the file") from None


def to_nchw(images: NDArray[Any], path: Path, info: FlagInfo, size: int) -> NDArray[np.uint8]:
    """``(N, H, W)``, ``(N, H, W, 3)`` or 3D ``(N, D, H, W)`` uint8 → ``(N, C, *spatial)``, checked against the
    flag and size."""
    spatial = (size,) * info.spatial_dims
    expected = spatial if info.channels == 1 else (*spatial, 3)
    if images.dtype != np.uint8 or images.shape[1:] != expected:
        want = ", ".join(map(str, expected))
        raise DataError(f"{path}: images are {images.dtype} {images.shape}; expected uint8 (N, {want})")
    return images[:, None] if info.channels == 1 else np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def to_targets(labels: NDArray[Any], path: Path, info: FlagInfo) -> NDArray[np.int64]:
    """``(N, L)`` labels → ``(N,)`` class indices, or ``(N, L)`` 0/1 for multi-label, range-checked."""
    k = len(info.class_names)
    width = k if info.task_kind == "multilabel" else 1
    shape_ok = labels.ndim in (1, 2) and labels.size == len(labels) * width
    if not np.issubdtype(labels.dtype, np.integer) or not shape_ok:
        raise DataError(f"{path}: labels are {labels.dtype} {labels.shape}; expected integer (N, {width})")
    targets = labels.reshape(len(labels), width).astype(np.int64)
    top = 1 if info.task_kind == "multilabel" else k - 1
    bad = (targets < 0) | (targets > top)
    if bad.any():
        raise DataError(f"{path}: label value {int(targets[bad][0])} is outside 0..{top}")
    return targets if width > 1 else targets[:, 0]


def _present(folder: Path) -> str:
    found = sorted(p.stem for p in folder.glob("*.npz") if p.stem.split("_")[0] in ALL_FLAGS)
    if not found:
        return f"no (no MedMNIST .npz in {folder})"
    shown = ", ".join(found[:4]) + (", …" if len(found) > 4 else "")
    return f"yes: {shown} ({len(found)} file{'s' if len(found) > 1 else ''})"


register_location("medmnist", Location("medmnist", "{flag}.npz or {flag}_{size}.npz", _present))


@DATASETS.register(
    "medmnist",
    task_kind="per flag (multiclass, binary or multilabel)",
    help="MedMNIST v2/v3 npz files, 2D (flag=pathmnist, chestmnist, …; size 28/64/128/224) and 3D "
    "(organmnist3d, nodulemnist3d, …; size 28/64)",
    files=("{flag}.npz", "{flag}_{size}.npz"),
)
def medmnist(
    *, split: str = "train", root: str | None = None, flag: str = "pathmnist", size: int = 28,
    n: int | None = None, seed: int = 0, download: bool = False,
) -> ArrayDataset:  # fmt: skip
    """A MedMNIST dataset (2D or 3D) with its official train/val/test split.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder holding ``{flag}.npz`` (size 28) or ``{flag}_{size}.npz`` (default
            ``$MEDROBUST_DATA/medmnist``, i.e. ``~/.medrobust/data/medmnist``).
        flag: the dataset (see :data:`~medrobust.data.medmnist_info.ALL_FLAGS`).
        size: image side: 28, 64, 128 or 224 for 2D flags; 28 or 64 for 3D flags.
        n: keep a seeded stratified subset of ``n`` samples of the split (quick CPU runs); ``None`` keeps all.
        seed: seed of that subset.
        download: fetch a missing file with the optional ``medmnist`` package (needs internet).

    Shape:
        2D: images ``(N, C, size, size)``; 3D: volumes ``(N, 1, size, size, size)``; uint8. Targets ``(N,)``,
        or ``(N, L)`` for multi-label (ChestMNIST: L=14).
    """
    info = flag_info(flag)
    path = download_npz(root, flag, size, split) if download else npz_path(root, flag, size)
    raw_images, raw_labels = read_npz(path, split)
    if len(raw_images) != len(raw_labels):
        counts = f"{split}_images has {len(raw_images)} samples but {split}_labels has {len(raw_labels)}"
        raise DataError(f"{path}: {counts}")
    images, targets = to_nchw(raw_images, path, info, size), to_targets(raw_labels, path, info)
    extra: dict[str, Any] = {"path": str(path), "flag": flag, "size": size, "medmnist_task": info.task}
    if info.task_kind == "binary":
        extra["positive_class"] = info.positive_class
    if n is not None:
        keep = stratified_subset(targets, n, seed)
        images, targets = images[keep], targets[keep]
        extra["subset"] = f"seeded stratified subset of {n} (seed {seed})"
    names = info.class_names
    spatial = (size,) * info.spatial_dims
    meta = DatasetInfo("medmnist", info.task_kind, info.channels, spatial, len(names), names, split, extra)
    return ArrayDataset(images, targets, meta)
