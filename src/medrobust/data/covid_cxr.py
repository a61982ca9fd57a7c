"""The COVID-19 image data collection of Cohen et al. (2020, arXiv 2006.11988): ``metadata.csv`` + images.

Each row of ``metadata.csv`` names one image (``folder``/``filename``) with its ``patientid``, ``view`` (``PA``,
``AP``, ``AP Supine``, ``L``, …), ``modality`` (``X-ray``, ``CT``) and a hierarchical ``finding`` such as
``Pneumonia/Viral/COVID-19``. The loader keeps the chosen modality and views, derives the label (COVID-19 vs
every other finding, or the finding itself cut to ``depth`` levels) and splits by ``patientid`` so that no
patient has images in two splits (Martinez-Martinez & Nabavi used this collection with ResNet-18).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medrobust.data.base import ArrayDataset
from medrobust.data.csv_rows import read_csv_rows
from medrobust.data.folders import ImageOptions, load_image_split
from medrobust.data.imageio import BadFiles
from medrobust.data.paths import Location, dataset_root, register_location
from medrobust.data.registry import DATASETS
from medrobust.data.splits import grouped_split, split_rule, take_split
from medrobust.errors import ConfigError, DataError

METADATA = "metadata.csv"
COLUMNS = ("patientid", "finding", "view", "modality", "folder", "filename")
FRONTAL_VIEWS = ("PA", "AP", "AP Supine", "AP semi erect")
UNLABELLED = ("todo", "Unknown", "")
COVID = "COVID-19"


def read_metadata(path: Path) -> list[dict[str, str]]:
    """The rows of ``metadata.csv`` (each with its 1-based file line in ``"_line"``); required columns checked."""
    if not path.is_file():
        raise DataError(f"{path}: not found; --data-root must hold the collection's {METADATA} and image folders")
    return read_csv_rows(path, COLUMNS, what=f"; is this Cohen et al.'s {METADATA}?")


def label_of(finding: str, label: str, depth: int | None) -> str:
    """The class name of a ``finding``: ``COVID-19``/``other`` (``label="covid"``) or its first ``depth`` levels."""
    parts = [p.strip() for p in finding.split("/") if p.strip()]
    if label == "covid":
        return COVID if COVID in parts else "other"
    return "/".join(parts[:depth] if depth else parts)


def select_rows(
    rows: list[dict[str, str]], *, label: str, modality: str | None, views: Sequence[str] | None, depth: int | None
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Rows of the chosen modality and views with a known finding, and the count of each exclusion reason."""
    kept, excluded = [], {"modality": 0, "view": 0, "no finding label": 0}
    for row in rows:
        if modality is not None and row["modality"].strip() != modality:
            excluded["modality"] += 1
        elif views is not None and row["view"].strip() not in views:
            excluded["view"] += 1
        elif row["finding"].strip().split("/")[-1].strip() in UNLABELLED:
            excluded["no finding label"] += 1
        else:
            kept.append({**row, "_class": label_of(row["finding"], label, depth)})
    return kept, excluded


def _present(path: Path) -> str:
    if not (path / METADATA).is_file():
        return f"no ({METADATA} missing in {path})"
    return "yes"


register_location("covid-cxr", Location("covid-chestxray-dataset", f"{METADATA} and its images/ folder", _present))


@DATASETS.register(
    "covid-cxr",
    task_kind="binary (label=covid) or multiclass (label=finding)",
    help="COVID-19 image data collection (Cohen et al.): metadata.csv + images, split by patientid",
)
def covid_cxr(
    *, split: str = "train", root: str | None = None, label: str = "covid", classes: Sequence[str] | None = None,
    depth: int | None = None, views: Sequence[str] | None = FRONTAL_VIEWS, modality: str | None = "X-ray",
    size: int | Sequence[int] | None = 224, color: str = "grayscale", val_fraction: float = 0.1,
    test_fraction: float = 0.2, seed: int = 0, n: int | None = None, skip_bad: bool = False,
) -> ArrayDataset:  # fmt: skip
    """Cohen et al.'s COVID-19 chest X-ray collection.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: the repository folder holding ``metadata.csv`` (default ``$MEDROBUST_DATA/covid-chestxray-dataset``).
        label: ``"covid"`` — binary, ``COVID-19`` anywhere in the finding's hierarchy vs every other finding
            (positive class ``COVID-19``); ``"finding"`` — one class per finding, cut to ``depth`` levels.
        classes: with ``label="finding"``, the classes to keep, in label order (other findings are excluded and
            counted); default all findings found, sorted.
        depth: with ``label="finding"``, keep the first ``depth`` levels (``1``: ``Pneumonia`` vs ``No Finding``).
        views: views to keep (default the frontal ``PA``, ``AP``, ``AP Supine``, ``AP semi erect``); ``None``: all.
        modality: ``"X-ray"`` (default), ``"CT"`` or ``None`` for both.
        size: resize to ``size``×``size``; ``None`` keeps the files' size (they must then agree).
        color: ``"grayscale"`` or ``"rgb"``.
        val_fraction: target share of images (whole patients) for validation.
        test_fraction: target share of images (whole patients) for testing.
        seed: seed of the patient split and of the ``n`` subset.
        n: keep a seeded stratified subset of ``n`` images of the split.
        skip_bad: skip (and count) unreadable or missing image files instead of stopping.

    Shape:
        images ``(N, C, size, size)`` uint8; targets ``(N,)``.
    """
    if label not in ("covid", "finding"):
        raise ConfigError(f"covid-cxr label must be 'covid' or 'finding', got {label!r}")
    if label == "covid" and (classes is not None or depth is not None):
        raise ConfigError("covid-cxr: classes and depth apply to label='finding' only (label='covid' is binary)")
    folder = dataset_root("covid-cxr", root)
    csv_path = folder / METADATA
    views = [views] if isinstance(views, str) else views
    classes = [classes] if isinstance(classes, str) else classes
    rows, excluded = select_rows(read_metadata(csv_path), label=label, modality=modality, views=views, depth=depth)
    names = ("other", COVID) if label == "covid" else tuple(classes or sorted({r["_class"] for r in rows}))
    excluded["class not in classes"] = sum(r["_class"] not in names for r in rows)
    rows = [r for r in rows if r["_class"] in names]
    if len(rows) == 0:
        raise DataError(f"{csv_path}: no rows left after the modality/view/class filters (excluded: {excluded})")
    for r in rows:
        if not r["patientid"].strip() or not r["filename"].strip():
            raise DataError(f"{csv_path}:{r['_line']}: empty patientid or filename")
    labels = np.asarray([names.index(r["_class"]) for r in rows], dtype=np.int64)
    parts = grouped_split([r["patientid"] for r in rows], labels, val=val_fraction, test=test_fraction, seed=seed)
    indices = take_split(parts, split, f"covid-cxr in {folder}")
    extra: dict[str, Any] = {
        "path": str(folder),
        "label": label,
        "views": list(views) if views is not None else "all",
        "modality": modality or "all",
        "excluded_rows": excluded,
        "split_rule": split_rule(val_fraction, test_fraction, seed, by="patientid"),
        "split_sizes": {s: len(p) for s, p in parts.items()},
        "patients": len({rows[i]["patientid"] for i in indices}),
    }
    if len(names) == 2:
        extra["positive_class"] = 1
    files = [folder / rows[i]["folder"].strip() / rows[i]["filename"].strip() for i in indices]
    opts = ImageOptions(size, color, val_fraction, test_fraction, seed, n, skip_bad)
    return load_image_split(
        "covid-cxr", split, files, labels[indices], names, opts, extra, BadFiles("covid-cxr", skip_bad)
    )
