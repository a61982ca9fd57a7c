"""Medical Segmentation Decathlon tasks as 2D slices: ``msd-heart``, ``msd-hippocampus``, ``msd-prostate``.

The folder format is the Decathlon's (Simpson et al. 2019, http://medicaldecathlon.com): ``TaskXX_Name/`` holds
``dataset.json`` (``"training"``: ``[{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}, …]``,
``"labels"``, ``"modality"``, ``"numTraining"``), ``imagesTr/`` and ``labelsTr/`` (NIfTI; Prostate's images are 4D,
T2 and ADC). Only the labelled training cases are used (the Decathlon's test labels are not public).

The setting follows AMAT's official segmentation runs (SarielMa/amat_conf at d0aa94e): nnU-Net **2D**, fold 1
(``nnUNet/nnunet/run/run_AMAT_training.py`` L114-115), so a sample is one axial slice and every slice owns an
AMAT margin. The split is nnU-Net's: a 5-fold ``KFold(shuffle=True, random_state=12345)`` over the sorted case ids
(``nnUNetTrainerV2.py`` L530-538) reproduced without scikit-learn; the fold's training cases train, and its
held-out cases are cut (sorted) into a first third for validation and the rest for testing (L565-582).

Intensities follow nnU-Net's MRI normalisation, a per-case, per-modality z-score, then map linearly onto [0, 1] with
``z = ±z_range`` at 0 and 1 (clipped beyond): one z-score unit is ``1/(2·z_range)`` here, which
``info.extra["z_per_unit"]`` records, so the official radii (in z-score units) convert exactly. Slices are resized
to ``size`` (bilinear for images, nearest for labels); nnU-Net instead resamples volumes to the median spacing and
trains on patches, so radii in the L2 norm only match where ``size`` matches its patch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data import medio_read as R
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.imageio import progress as progress_bar
from medrobust.data.imageio import sizes
from medrobust.data.paths import Location, dataset_root, register_location
from medrobust.data.registry import DATASETS
from medrobust.errors import ConfigError, DataError

FOLDS = 5
SPLIT_SEED = 12345  # nnUNetTrainerV2.py L531: KFold(n_splits=5, shuffle=True, random_state=12345)
AMAT_FOLD = 1  # run_AMAT_training.py L114: fold = "1"


@dataclass(frozen=True)
class MSDTask:
    """One Decathlon task: its folder name, AMAT's Dice threshold and our default slice size."""

    folder: str
    tau: float
    size: tuple[int, int]


# τ: the mean clean Dice of the standard model, nnUNetTrainerV2.py L347-356 (D2 0.9114448, D4 0.8065869,
# D5 0.86081946). Sizes are ours: the cases' in-plane size for Heart and Prostate (most Prostate cases are
# 320×320), and 64×64 around Hippocampus' crops (at most about 60 voxels a side).
MSD_TASKS = {
    "msd-heart": MSDTask("Task02_Heart", 0.9114448, (320, 320)),
    "msd-hippocampus": MSDTask("Task04_Hippocampus", 0.8065869, (64, 64)),
    "msd-prostate": MSDTask("Task05_Prostate", 0.86081946, (320, 320)),
}


def nnunet_fold(keys: Sequence[str], fold: int, seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """nnU-Net's 5-fold split: the training and held-out case ids of ``fold`` (each sorted).

    Same as ``sklearn.model_selection.KFold(5, shuffle=True, random_state=seed)`` over the sorted ids: the indices
    are shuffled by ``numpy.random.RandomState(seed)``, and fold ``k`` holds out the ``k``-th run of
    ``n // 5`` (the first ``n % 5`` folds one more) shuffled indices.
    """
    ordered = sorted(keys)
    if not 0 <= fold < FOLDS:
        raise ConfigError(f"fold must be 0..{FOLDS - 1}, got {fold!r}")
    if len(ordered) < FOLDS:
        raise DataError(f"{len(ordered)} training cases; a {FOLDS}-fold split needs at least {FOLDS}")
    order = np.arange(len(ordered))
    np.random.RandomState(seed).shuffle(order)
    fold_sizes = np.full(FOLDS, len(ordered) // FOLDS)
    fold_sizes[: len(ordered) % FOLDS] += 1
    start = int(fold_sizes[:fold].sum())
    held = set(order[start : start + int(fold_sizes[fold])].tolist())
    return [k for i, k in enumerate(ordered) if i not in held], [k for i, k in enumerate(ordered) if i in held]


def split_cases(keys: Sequence[str], split: str, fold: int) -> list[str]:
    """The case ids of ``split``: the fold's training cases, or the first third (val) / the rest (test) of its
    held-out cases (``nnUNetTrainerV2.py`` L565-582: ``pivot = int(len(val_keys) / 3)``)."""
    train, held = nnunet_fold(keys, fold)
    pivot = int(len(held) / 3)
    return {"train": train, "val": held[:pivot], "test": held[pivot:]}[split]


def read_catalog(folder: Path, name: str) -> dict[str, Any]:
    """``dataset.json`` of a task folder, checked for the keys the loader uses."""
    path = folder / "dataset.json"
    if not path.is_file():
        raise DataError(f"{name}: {path} not found; {_download(name)}")
    try:
        catalog = json.loads(path.read_text())
        cases, labels, modality = catalog["training"], catalog["labels"], catalog["modality"]
        ok = all("image" in c and "label" in c for c in cases) and cases and labels and modality
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a Decathlon dataset.json ({type(err).__name__}: {err})") from None
    if not ok:
        raise DataError(f"{path}: needs non-empty 'training' (image, label), 'labels' and 'modality'")
    return dict(catalog)


def case_id(entry: dict[str, str]) -> str:
    """nnU-Net's case id: the image file name without ``.nii.gz`` (``./imagesTr/la_003.nii.gz`` → ``la_003``)."""
    return Path(entry["image"]).name.removesuffix(".gz").removesuffix(".nii")


def zscore_unit(volume: R.FloatArray, z_range: float) -> R.FloatArray:
    """nnU-Net's MRI normalisation (z-score over the whole volume) mapped onto [0, 1]: ``(z + r) / 2r``, clipped.

    Shape:
        ``(D, H, W)`` → same, float32.
    """
    std = float(volume.std())
    z = (volume - float(volume.mean())) / (std if std > 0 else 1.0)
    return np.clip((z + z_range) / (2 * z_range), 0.0, 1.0).astype(np.float32)


def case_slices(
    folder: Path, entry: dict[str, str], shape: tuple[int, int], z_range: float, channels: int
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """One case as slices along its first (z) axis: images ``(D, M, *shape)`` uint8 and labels ``(D, *shape)``."""
    image_path, label_path = folder / entry["image"], folder / entry["label"]
    for path in (image_path, label_path):
        if not path.is_file():
            raise DataError(f"{path}: listed in {folder / 'dataset.json'} but not found")
    volumes, _ = R.read_nifti_channels(image_path)
    labels, _ = R.read_nifti(label_path)
    if volumes.shape[0] != channels or volumes.shape[1:] != labels.shape:
        raise DataError(
            f"{image_path}: image {volumes.shape[1:]} × {volumes.shape[0]} modalities does not match label "
            f"{labels.shape} × {channels} modalities of dataset.json"
        )
    units = np.stack([zscore_unit(v, z_range) for v in volumes], axis=1)  # (D, M, H, W)
    images = np.stack([np.stack([R.resize(c, shape) for c in s]) for s in units])
    masks = np.stack([R.resize_labels(np.rint(s).astype(np.int64), shape) for s in labels])
    return np.rint(images * 255).astype(np.uint8), masks


def ordered(mapping: dict[str, Any], folder: Path) -> list[str]:
    """The values of a ``dataset.json`` map keyed by ``"0"``, ``"1"``, … in key order (``labels``, ``modality``)."""
    if not all(str(k).isdigit() for k in mapping):
        raise DataError(f"{folder / 'dataset.json'}: keys {sorted(mapping)} are not 0, 1, …")
    return [str(v) for _, v in sorted(mapping.items(), key=lambda kv: int(kv[0]))]


def read_slices(
    folder: Path, entries: list[dict[str, str]], shape: tuple[int, int], catalog: dict[str, Any], opts: dict[str, Any]
) -> tuple[list[NDArray[np.uint8]], list[NDArray[np.int64]], list[NDArray[np.int64]]]:
    """Per case: its slices (every one, or those with a label when ``opts["foreground_only"]``), their label maps
    and their slice indices."""
    images, masks, kept = [], [], []
    for entry in progress_bar(entries, str(catalog.get("name", folder.name))):
        x, y = case_slices(folder, entry, shape, float(opts["z_range"]), len(catalog["modality"]))
        keep = np.flatnonzero(y.reshape(len(y), -1).any(1)) if opts["foreground_only"] else np.arange(len(y))
        images.append(x[keep])
        masks.append(y[keep])
        kept.append(keep)
    return images, masks, kept


def load_msd(name: str, split: str, root: str | None, opts: dict[str, Any]) -> ArrayDataset:
    """The shared body of the three ``msd-*`` loaders (``opts``: their keyword options)."""
    task = MSD_TASKS[name]
    if not opts["z_range"] > 0:
        raise ConfigError(f"{name}: z_range must be > 0, got {opts['z_range']!r}")
    height, width = sizes(opts["size"] or task.size, 2, f"{name}: size must be a positive int or [height, width]")
    shape = (height, width)
    base = dataset_root(name, root)
    folder = base if (base / "dataset.json").is_file() else base / task.folder
    catalog = read_catalog(folder, name)
    by_id = {case_id(e): e for e in catalog["training"]}
    cases = split_cases(list(by_id), split, int(opts["fold"]))[: opts["cases"]]
    if not cases:
        raise DataError(f"{name}: the {split} split of fold {opts['fold']} has no cases ({len(by_id)} in all)")
    class_names = tuple(ordered(catalog["labels"], folder))
    images, masks, kept = read_slices(folder, [by_id[c] for c in cases], shape, catalog, opts)
    found = int(max(m.max() for m in masks))
    if found >= len(class_names):
        raise DataError(f"{folder}: label value {found} but dataset.json names {len(class_names)} labels")
    extra = {
        "path": str(folder), "fold": int(opts["fold"]), "cases": cases, "z_per_unit": 2 * float(opts["z_range"]),
        "modality": ordered(catalog["modality"], folder),
        "split_rule": f"nnU-Net 5-fold split (KFold seed {SPLIT_SEED}), fold {opts['fold']}: its training cases; "
        "held-out cases sorted, first third val, the rest test",
        "task": {"tau": task.tau},
    }  # fmt: skip
    x_all = np.concatenate(images)
    info = DatasetInfo(name, "segmentation", x_all.shape[1], shape, len(class_names), class_names, split, extra)
    owner = np.concatenate([np.full(len(keep), k) for k, keep in enumerate(kept)])
    return ArrayDataset(x_all, np.concatenate(masks), info, {"case": owner, "slice": np.concatenate(kept)})


def _download(name: str) -> str:
    task = MSD_TASKS[name]
    return (
        f"download {task.folder}.tar from http://medicaldecathlon.com (Google Drive / AWS), extract it and pass "
        f"--data-root DIR holding {task.folder}/ (or the {task.folder} folder itself)"
    )


def _present(name: str) -> Any:
    folder = MSD_TASKS[name].folder

    def check(path: Path) -> str:
        found = (path / "dataset.json").is_file() or (path / folder / "dataset.json").is_file()
        return "yes" if found else f"no ({folder}/dataset.json missing in {path})"

    return check


def _register(name: str, what: str) -> None:
    task = MSD_TASKS[name]
    wants = f"{task.folder}/ (extract {task.folder}.tar from http://medicaldecathlon.com)"
    register_location(name, Location("msd", wants, _present(name)))

    def loader(
        *, split: str = "train", root: str | None = None, fold: int = AMAT_FOLD,
        size: int | Sequence[int] | None = None, z_range: float = 5.0, foreground_only: bool = False,
        cases: int | None = None,
    ) -> ArrayDataset:  # fmt: skip
        opts = {k: v for k, v in locals().items() if k not in ("split", "root")}
        return load_msd(name, split, root, opts)

    loader.__doc__ = f"""Medical Segmentation Decathlon {task.folder}: {what}, as 2D slices (module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (nnU-Net's fold ``fold``; see the module docstring).
        root: folder holding ``{task.folder}/`` (or that folder itself); default ``$MEDROBUST_DATA/msd``.
        fold: nnU-Net fold 0-4 (AMAT: 1).
        size: slice size, an int or ``[height, width]`` (default {task.size[0]}×{task.size[1]}).
        z_range: z-scores ``±z_range`` map to 0 and 1 (``info.extra["z_per_unit"]`` = ``2·z_range``).
        foreground_only: keep only slices with a foreground label (default: every slice, as nnU-Net samples).
        cases: keep only the first ``cases`` cases of the split (quick runs).

    Returns:
        Slices of every case of the split, in case order; targets are label maps; ``extras`` hold ``case``
        (index into ``info.extra["cases"]``) and ``slice``. The task's Dice threshold is AMAT's τ = {task.tau}.

    Shape:
        images uint8 ``(N, M, H, W)`` (``M`` modalities); targets ``(N, H, W)`` in ``0..K−1``.
    """
    DATASETS.register(name, task_kind="segmentation", help=f"Decathlon {task.folder}: {what} (2D slices)")(loader)


_register("msd-heart", "left atrium segmentation, MRI")
_register("msd-hippocampus", "anterior/posterior hippocampus segmentation, MRI")
_register("msd-prostate", "peripheral/transition zone segmentation, T2 + ADC MRI")
