"""Class-per-folder image datasets: the generic ``image-folder`` and the SARS-CoV-2 CT set (``covid-ct``).

``image-folder`` reads ``ROOT/<class>/**/<image>`` in any format Pillow decodes, or, when ``ROOT/train/`` and
``ROOT/test/`` exist, their official split (``ROOT/val/`` too, else val is carved from train). Without an
official split it makes a seeded stratified split and states it in ``extra['split_rule']``.

``covid-ct`` is the SARS-CoV-2 CT-scan dataset of Soares et al. (2020, medRxiv 10.1101/2020.04.24.20078584):
1,252 CT slices of COVID-19 patients in ``COVID/`` and 1,230 of other patients in ``non-COVID/``, PNGs of varying
size. It has no official split and no patient ids, so the split is by image: slices of one patient can fall
into different splits (the metadata says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.imageio import BadFiles, channels_of, image_size, read_images
from medrobust.data.paths import Location, dataset_root, register_location
from medrobust.data.registry import DATASETS
from medrobust.data.sampling import stratified_subset
from medrobust.data.splits import split_rule, stratified_split, take_split
from medrobust.errors import DataError

IMAGE_EXTENSIONS = frozenset(Image.registered_extensions())
COVID_CT_CLASSES = ("non-COVID", "COVID")


@dataclass(frozen=True)
class ImageOptions:
    """Options shared by the image loaders (see :func:`image_folder` for their meaning)."""

    size: int | Sequence[int] | None = 224
    color: str = "grayscale"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    n: int | None = None
    skip_bad: bool = False


def is_image(path: Path) -> bool:
    """A visible file whose extension Pillow knows."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def scan_classes(
    folder: Path, classes: Sequence[str] | None, bad: BadFiles
) -> tuple[list[Path], NDArray[np.int64], tuple[str, ...]]:
    """Image files under ``folder/<class>/`` with their class index.

    Args:
        folder: holds one sub-folder per class.
        classes: class names in label order; ``None`` takes the sorted sub-folder names. A sub-folder not in
            ``classes`` is a bad entry (a label outside the class list).
        bad: the bad-file policy.
    """
    dirs = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = [classes] if isinstance(classes, str) else classes
    names = tuple(classes) if classes is not None else tuple(dirs)
    for d in dirs:
        if d not in names:
            bad.fail(folder / d, f"class folder {d!r} is not in the class list {list(names)}")
    missing = [c for c in names if c not in dirs]
    if missing:
        raise DataError(f"{folder}: class folder(s) {', '.join(missing)} missing (found {', '.join(dirs) or 'none'})")
    if len(names) < 2:
        raise DataError(
            f"{folder}: found {len(names)} class folder(s); an image-folder needs one folder per class (≥ 2)"
        )
    files: list[Path] = []
    labels: list[int] = []
    for k, name in enumerate(names):
        found = sorted(p for p in (folder / name).rglob("*") if is_image(p))
        if not found:
            raise DataError(f"{folder / name}: no image files in this class folder")
        files += found
        labels += [k] * len(found)
    return files, np.asarray(labels, dtype=np.int64), names


def load_image_split(
    name: str,
    split: str,
    files: Sequence[Path],
    labels: NDArray[np.int64],
    class_names: tuple[str, ...],
    opts: ImageOptions,
    extra: dict[str, Any],
    bad: BadFiles,
) -> ArrayDataset:
    """Decode the files of one split (already chosen) into an :class:`ArrayDataset`.

    Shape:
        images ``(N, C, H, W)`` uint8, targets ``(N,)``.
    """
    channels, size = channels_of(opts.color), image_size(opts.size)
    if opts.n is not None:
        keep = stratified_subset(labels, opts.n, opts.seed)
        files, labels = [files[i] for i in keep], labels[keep]
        extra["subset"] = f"seeded stratified subset of {opts.n} (seed {opts.seed})"
    images, kept = read_images(files, size=size, channels=channels, bad=bad)
    if len(kept) == 0:
        raise DataError(f"{name} ({split}): all {len(files)} image files were bad (first: {bad.items[0][0]})")
    bad.report(extra, split)
    kind = "binary" if len(class_names) == 2 else "multiclass"
    spatial = (int(images.shape[2]), int(images.shape[3]))
    info = DatasetInfo(name, kind, channels, spatial, len(class_names), class_names, split, extra)
    return ArrayDataset(images, labels[kept], info)


def _official_split_folder(folder: Path, split: str, opts: ImageOptions) -> tuple[Path, str, bool] | None:
    """``(folder to scan, rule, carve val from it?)`` when ``folder`` has train/ and test/ sub-folders."""
    if not ((folder / "train").is_dir() and (folder / "test").is_dir()):
        return None
    if (folder / "val").is_dir() or split == "test":
        return folder / split, "official split: folders train/, val/, test/", False
    return (
        folder / "train",
        f"official train/ and test/ folders; val carved from train/ ({opts.val_fraction:.0%})",
        True,
    )


@DATASETS.register(
    "image-folder",
    task_kind="binary or multiclass (one folder per class)",
    help="any class-per-folder image dataset (PNG, JPEG, TIFF, BMP, …) under --data-root, resized",
)
def image_folder(
    *, split: str = "train", root: str | None = None, classes: Sequence[str] | None = None,
    positive_class: str | None = None, size: int | Sequence[int] | None = 224, color: str = "grayscale",
    val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0, n: int | None = None,
    skip_bad: bool = False,
) -> ArrayDataset:  # fmt: skip
    """A class-per-folder image dataset.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder with one sub-folder per class (or ``train/``, ``test/`` [``val/``] holding those).
        classes: class names in label order (default: sorted folder names); other folders are bad entries.
        positive_class: for two classes, the abnormal one (its recall is the sensitivity); default the second.
        size: resize every image to ``size``×``size`` (or ``[H, W]``); ``None`` keeps the files' size.
        color: ``"grayscale"`` (1 channel) or ``"rgb"`` (3 channels).
        val_fraction: share of each class held out for validation (without an official split).
        test_fraction: share of each class held out for testing (without an official split).
        seed: seed of the split and of the ``n`` subset.
        n: keep a seeded stratified subset of ``n`` images of the split.
        skip_bad: skip (and count) unreadable files and foreign folders instead of stopping.

    Shape:
        images ``(N, C, H, W)`` uint8; targets ``(N,)``.
    """
    opts = ImageOptions(size, color, val_fraction, test_fraction, seed, n, skip_bad)
    return _class_folders("image-folder", split, dataset_root("image-folder", root), classes, positive_class, opts)


def _class_folders(
    name: str, split: str, folder: Path, classes: Sequence[str] | None, positive: str | None, opts: ImageOptions
) -> ArrayDataset:
    bad = BadFiles(name, opts.skip_bad)
    official = _official_split_folder(folder, split, opts)
    source = official[0] if official else folder
    if official is not None and classes is None:  # the same label order in every split: train/'s folders
        classes = sorted(d.name for d in (folder / "train").iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels, names = scan_classes(source, classes, bad)
    extra: dict[str, Any] = {"path": str(folder), "files": len(files)}
    if official is not None and not official[2]:
        indices, extra["split_rule"] = np.arange(len(files)), official[1]
    elif official is not None:  # val carved from the official train folder
        parts = stratified_split(labels, val=opts.val_fraction, test=0.0, seed=opts.seed)
        extra["split_rule"] = official[1]
        indices = take_split(parts, split, f"{name} in {source}")
    else:
        parts = stratified_split(labels, val=opts.val_fraction, test=opts.test_fraction, seed=opts.seed)
        extra["split_rule"] = split_rule(opts.val_fraction, opts.test_fraction, opts.seed)
        extra["split_sizes"] = {s: len(p) for s, p in parts.items()}
        indices = take_split(parts, split, f"{name} in {folder}")
    if len(names) == 2:
        extra["positive_class"] = _positive_index(names, positive, folder)
    return load_image_split(name, split, [files[i] for i in indices], labels[indices], names, opts, extra, bad)


def _positive_index(names: tuple[str, ...], positive: str | None, folder: Path) -> int:
    if positive is None:
        return 1
    if positive not in names:
        raise DataError(f"{folder}: positive_class {positive!r} is not one of the classes {list(names)}")
    return names.index(positive)


def _covid_ct_present(path: Path) -> str:
    found = [c for c in COVID_CT_CLASSES if (path / c).is_dir()]
    if len(found) < 2:
        return f"no (needs COVID/ and non-COVID/ in {path})"
    counts = [sum(1 for p in (path / c).rglob("*") if is_image(p)) for c in COVID_CT_CLASSES]
    return f"yes ({counts[1]} COVID, {counts[0]} non-COVID)"


def _folder_present(path: Path) -> str:
    base = path / "train" if (path / "train").is_dir() else path
    classes = [d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return f"yes ({len(classes)} class folders)" if len(classes) >= 2 else f"no (< 2 class folders in {base})"


register_location("image-folder", Location(None, "one sub-folder of images per class", _folder_present))
register_location("covid-ct", Location("covid-ct", "the folders COVID/ and non-COVID/", _covid_ct_present))


@DATASETS.register(
    "covid-ct",
    task_kind="binary",
    help="SARS-CoV-2 CT scans (Soares et al. 2020): COVID/ vs non-COVID/ PNGs, seeded stratified split",
)
def covid_ct(
    *, split: str = "train", root: str | None = None, size: int | Sequence[int] | None = 224,
    color: str = "grayscale", val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
    n: int | None = None, skip_bad: bool = False,
) -> ArrayDataset:  # fmt: skip
    """The SARS-CoV-2 CT-scan dataset (Soares et al. 2020); positive class ``COVID``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder holding ``COVID/`` and ``non-COVID/`` (default ``$MEDROBUST_DATA/covid-ct``).
        size: resize to ``size``×``size`` (IMA used 224); ``None`` keeps the files' size.
        color: ``"grayscale"`` or ``"rgb"``.
        val_fraction: share of each class for validation.
        test_fraction: share of each class for testing.
        seed: seed of the split (by image: there are no patient ids).
        n: keep a seeded stratified subset of ``n`` images of the split.
        skip_bad: skip (and count) unreadable files instead of stopping.

    Shape:
        images ``(N, C, size, size)`` uint8; targets ``(N,)`` with 1 = COVID.
    """
    opts = ImageOptions(size, color, val_fraction, test_fraction, seed, n, skip_bad)
    ds = _class_folders("covid-ct", split, dataset_root("covid-ct", root), COVID_CT_CLASSES, "COVID", opts)
    ds.info.extra["patient_ids"] = (
        "none: Soares et al. publish no patient ids, so the split is by image and slices of one patient can be in "
        "two splits"
    )
    return ds
