"""MedMNIST v2/v3 2D datasets read from their local ``.npz`` files.

Each flag (``pathmnist``, ``chestmnist``, …) and size has one ``.npz`` holding ``{split}_images`` ``(N, H, W)``
or ``(N, H, W, 3)`` uint8 and ``{split}_labels`` ``(N, L)`` (Yang et al. 2023, "MedMNIST v2", Scientific Data
10:41; MedMNIST+ adds sizes 64, 128 and 224). medrobust reads the files and never downloads them.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.registry import DATASETS
from medrobust.data.sampling import stratified_subset
from medrobust.errors import ConfigError, DataError, UnknownNameError
from medrobust.registry import unknown_name_message

SIZES = (28, 64, 128, 224)
_NO_DOWNLOAD = "medrobust does not download"


@dataclass(frozen=True)
class FlagInfo:
    """Official metadata of one 2D MedMNIST flag.

    Attributes:
        task: the MedMNIST task type (``"multi-class"``, ``"binary-class"``, ``"multi-label, binary-class"``,
            ``"ordinal-regression"``).
        channels: 1 (grey) or 3 (RGB).
        class_names: one name per class, or per label for multi-label.
        positive_class: the abnormal class of a binary task (its recall is the sensitivity).
    """

    task: str
    channels: int
    class_names: tuple[str, ...]
    positive_class: int = 1

    @property
    def task_kind(self) -> str:
        """medrobust's task kind; ordinal regression is treated as multi-class."""
        return {"binary-class": "binary", "multi-label, binary-class": "multilabel"}.get(self.task, "multiclass")


_ORGANS = (
    "bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
    "liver", "lung-left", "lung-right", "pancreas", "spleen",
)  # fmt: skip

INFO: dict[str, FlagInfo] = {
    "pathmnist": FlagInfo("multi-class", 3, (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium",
    )),
    "chestmnist": FlagInfo("multi-label, binary-class", 1, (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
        "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia",
    )),
    "dermamnist": FlagInfo("multi-class", 3, (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions",
    )),
    "octmnist": FlagInfo("multi-class", 1, (
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal",
    )),
    "pneumoniamnist": FlagInfo("binary-class", 1, ("normal", "pneumonia")),
    "retinamnist": FlagInfo("ordinal-regression", 3, ("0", "1", "2", "3", "4")),
    "breastmnist": FlagInfo("binary-class", 1, ("malignant", "normal, benign"), positive_class=0),
    "bloodmnist": FlagInfo("multi-class", 3, (
        "basophil", "eosinophil", "erythroblast", "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
        "lymphocyte", "monocyte", "neutrophil", "platelet",
    )),
    "tissuemnist": FlagInfo("multi-class", 1, (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
        "Thick Ascending Limb",
    )),
    "organamnist": FlagInfo("multi-class", 1, _ORGANS),
    "organcmnist": FlagInfo("multi-class", 1, _ORGANS),
    "organsmnist": FlagInfo("multi-class", 1, _ORGANS),
}  # fmt: skip
"""2D flags, after the official ``medmnist.INFO`` metadata."""


def flag_info(flag: str) -> FlagInfo:
    """Metadata of ``flag``; :class:`ConfigError` for 3D flags, :class:`UnknownNameError` for unknown ones."""
    if flag.lower().endswith("3d"):
        raise ConfigError(f"MedMNIST 3D ({flag!r}) arrives in a later release; use a 2D flag ({', '.join(INFO)})")
    if flag not in INFO:
        raise UnknownNameError(unknown_name_message("MedMNIST flag", flag, list(INFO)))
    return INFO[flag]


def npz_path(root: str | None, flag: str, size: int) -> Path:
    """``root/{flag}.npz`` (size 28) or ``root/{flag}_{size}.npz``; a one-line :class:`DataError` if missing."""
    if size not in SIZES:
        raise ConfigError(f"MedMNIST size {size!r} is not one of {', '.join(map(str, SIZES))}")
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    if root is None:
        raise DataError(f"medmnist: no data root given; pass --data-root DIR holding {name} ({_NO_DOWNLOAD})")
    path = Path(root) / name
    if not path.is_file():
        raise DataError(f"medmnist: {name} not found in {root}; pass --data-root DIR holding it ({_NO_DOWNLOAD})")
    return path


def read_npz(path: Path, split: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The raw ``{split}_images`` and ``{split}_labels`` arrays of a MedMNIST ``.npz``."""
    keys = (f"{split}_images", f"{split}_labels")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing key(s) {', '.join(missing)} (has {', '.join(npz.files) or 'none'})")
            return npz[keys[0]], npz[keys[1]]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as err:
        raise DataError(f"{path}: corrupt or truncated npz ({err}); re-download the file") from None


def to_nchw(images: NDArray[Any], path: Path, info: FlagInfo, size: int) -> NDArray[np.uint8]:
    """``(N, H, W)`` or ``(N, H, W, 3)`` uint8 → ``(N, C, H, W)``, checked against the flag and size."""
    expected = (size, size) if info.channels == 1 else (size, size, 3)
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


@DATASETS.register(
    "medmnist",
    task_kind="per flag (multiclass, binary or multilabel)",
    help="MedMNIST v2/v3 2D npz files (flag=pathmnist, chestmnist, …; size=28/64/128/224), read from --data-root",
    files=("{flag}.npz", "{flag}_{size}.npz"),
)
def medmnist(
    *, split: str = "train", root: str | None = None, flag: str = "pathmnist", size: int = 28,
    n: int | None = None, seed: int = 0,
) -> ArrayDataset:  # fmt: skip
    """A 2D MedMNIST dataset with its official train/val/test split.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder holding ``{flag}.npz`` (size 28) or ``{flag}_{size}.npz``; required.
        flag: the dataset (see :data:`INFO`).
        size: image side, 28, 64, 128 or 224.
        n: keep a seeded stratified subset of ``n`` samples of the split (quick CPU runs); ``None`` keeps all.
        seed: seed of that subset.

    Shape:
        images ``(N, C, size, size)`` uint8; targets ``(N,)``, or ``(N, L)`` for multi-label (ChestMNIST: L=14).
    """
    info = flag_info(flag)
    path = npz_path(root, flag, size)
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
    meta = DatasetInfo("medmnist", info.task_kind, info.channels, (size, size), len(names), names, split, extra)
    return ArrayDataset(images, targets, meta)
