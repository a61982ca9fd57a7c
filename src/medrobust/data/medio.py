"""``dicom-folder`` and ``nifti-folder``: a folder of DICOM or NIfTI files plus a CSV of labels.

The CSV (default ``labels.csv`` in the root) has a header with at least ``file`` (path relative to the root; for
``dicom-folder`` with ``dims=3`` a folder of slices or a multi-frame file) and ``label`` (a class name). An
optional ``split`` column (``train``/``val``/``test``) gives the split; otherwise a seeded stratified split is
made, by ``group_column`` (e.g. a patient id) when given, so that no group is in two splits. Intensities are
windowed to [0, 1] (see :mod:`medrobust.data.medio_read`), then 2D slices or 3D volumes are resized to ``size``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data import medio_read as R
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.csv_rows import read_csv_rows
from medrobust.data.imageio import BadFiles, progress, sizes
from medrobust.data.paths import Location, dataset_root, register_location
from medrobust.data.registry import DATASETS
from medrobust.data.sampling import stratified_subset
from medrobust.data.splits import SPLIT_NAMES, grouped_split, split_rule, stratified_split, take_split
from medrobust.errors import ConfigError, DataError

Reader = Callable[[Path], tuple[R.FloatArray, dict[str, Any]]]


def read_labels(
    path: Path, file_column: str, label_column: str, extra_columns: Sequence[str], optional: Sequence[str] = ()
) -> list[dict[str, str]]:
    """Rows of the labels CSV (each with its file line in ``"_line"``); the named columns must exist and have a
    value in every row (as must the ``optional`` columns that exist)."""
    if not path.is_file():
        raise DataError(f"{path}: labels CSV not found; put a CSV with columns {file_column},{label_column} there")
    wanted = [file_column, label_column, *extra_columns]
    return read_csv_rows(path, wanted, optional)


def class_list(labels: list[str], classes: Sequence[str] | None) -> tuple[str, ...]:
    """``classes`` as given, else the sorted distinct labels (numerically when all are integers)."""
    if classes is not None:
        return tuple(str(c) for c in ([classes] if isinstance(classes, str) else classes))
    found = sorted(set(labels))
    return tuple(sorted(found, key=int) if all(s.lstrip("-").isdigit() for s in found) else found)


def _shape(size: int | Sequence[int] | None, dims: int) -> tuple[int, ...] | None:
    if size is None:
        return None
    return sizes(size, dims, f"size must be a positive int or {dims} sizes for dims={dims}")


def _pick_dims(values: R.FloatArray, dims: int, slice_index: int | None, path: Path) -> R.FloatArray:
    """Turn a read array into a 2D image or 3D volume as asked."""
    if dims == 3:
        if values.ndim != 3:
            raise DataError(f"{path}: is a single 2D slice; for dims=3 name a folder of slices or a 3D file")
        return values
    if values.ndim == 2:
        return values
    k = values.shape[0] // 2 if slice_index is None else slice_index
    if not -values.shape[0] <= k < values.shape[0]:
        raise DataError(f"{path}: slice_index {k} is outside its {values.shape[0]} slices")
    return values[k]


def _split_indices(rows: list[dict[str, str]], labels: NDArray[np.int64], opts: dict[str, Any], csv_path: Path) -> Any:
    column, group = opts["split_column"], opts["group_column"]
    if column and rows and column in rows[0]:
        bad = [r for r in rows if r[column].strip() not in SPLIT_NAMES]
        if bad:
            raise DataError(f"{csv_path}:{bad[0]['_line']}: split {bad[0][column]!r} is not train, val or test")
        marks = np.array([r[column].strip() for r in rows])
        return {s: np.flatnonzero(marks == s) for s in SPLIT_NAMES}, f"the CSV's {column!r} column"
    val, test, seed = opts["val_fraction"], opts["test_fraction"], opts["seed"]
    if group:
        groups = [r[group] for r in rows]
        return grouped_split(groups, labels, val=val, test=test, seed=seed), split_rule(val, test, seed, by=group)
    return stratified_split(labels, val=val, test=test, seed=seed), split_rule(val, test, seed)


def load_folder(name: str, reader: Reader, split: str, root: str | None, opts: dict[str, Any]) -> ArrayDataset:
    """The shared body of ``dicom-folder`` and ``nifti-folder`` (``opts``: their keyword options)."""
    if opts["dims"] not in (2, 3):
        raise ConfigError(f"dims must be 2 (slices) or 3 (volumes), got {opts['dims']!r}")
    opts["window"], opts["percentiles"] = R.check_window(opts["window"], opts["percentiles"])
    folder = dataset_root(name, root)
    csv_path = folder / opts["labels"]
    extra_cols = [opts["group_column"]] if opts["group_column"] else []
    split_col = opts["split_column"]
    if split_col and split_col != "split":  # a column the user named must exist; the default one is optional
        extra_cols.append(split_col)
    rows = read_labels(
        csv_path, opts["file_column"], opts["label_column"], extra_cols, [split_col] if split_col else []
    )
    if not rows:
        raise DataError(f"{csv_path}: no rows")
    bad = BadFiles(name, opts["skip_bad"])
    names = class_list([r[opts["label_column"]].strip() for r in rows], opts["classes"])
    for r in rows:
        if r[opts["label_column"]].strip() not in names:
            bad.fail(
                f"{csv_path}:{r['_line']}", f"label {r[opts['label_column']]!r} is not in the class list {list(names)}"
            )
    rows = [r for r in rows if r[opts["label_column"]].strip() in names]
    labels = np.asarray([names.index(r[opts["label_column"]].strip()) for r in rows], dtype=np.int64)
    parts, rule = _split_indices(rows, labels, opts, csv_path)
    indices = take_split(parts, split, f"{name} in {folder}")
    if opts["n"] is not None:
        indices = indices[stratified_subset(labels[indices], opts["n"], opts["seed"])]
    arrays, kept = _read_all(folder, [rows[i] for i in indices], reader, opts, bad)
    if not arrays:
        raise DataError(f"{name} ({split}): all {len(indices)} files were bad (first: {bad.items[0][0]})")
    extra: dict[str, Any] = {"path": str(folder), "labels_csv": str(csv_path), "split_rule": rule, "dims": opts["dims"]}
    extra["window"] = opts["window"] if isinstance(opts["window"], str) else list(opts["window"])
    if len(names) == 2:
        extra["positive_class"] = 1
    bad.report(extra, split)
    images = np.stack(arrays)[:, None]
    kind = "binary" if len(names) == 2 else "multiclass"
    info = DatasetInfo(name, kind, 1, tuple(int(s) for s in images.shape[2:]), len(names), names, split, extra)
    return ArrayDataset(images, labels[indices][kept], info)


def _read_all(
    folder: Path, rows: list[dict[str, str]], reader: Reader, opts: dict[str, Any], bad: BadFiles
) -> tuple[list[R.FloatArray], list[int]]:
    shape = _shape(opts["size"], opts["dims"])
    arrays: list[R.FloatArray] = []
    kept: list[int] = []
    for i, row in enumerate(progress(rows, bad.dataset)):
        path = folder / row[opts["file_column"]].strip()
        try:
            if not path.exists():
                raise DataError(f"{path}: file not found (listed on line {row['_line']} of {opts['labels']})")
            values, facts = reader(path)
            values = _pick_dims(values, opts["dims"], opts["slice_index"], path)
            array = R.resize(R.to_unit(values, opts["window"], opts["percentiles"], facts, path), shape)
        except DataError as err:
            bad.fail(path, str(err).removeprefix(f"{path}: "))
            continue
        if arrays and array.shape != arrays[0].shape:
            bad.fail(path, f"shape {array.shape} differs from the first file's {arrays[0].shape}; pass size=")
            continue
        arrays.append(array)
        kept.append(i)
    return arrays, kept


def _dicom_reader(path: Path) -> tuple[R.FloatArray, dict[str, Any]]:
    return R.read_dicom_series(path) if path.is_dir() else R.read_dicom(path)


_DOC_OPTIONS = """
    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder holding the files and the labels CSV (required).
        labels: the CSV's name inside ``root``.
        file_column: CSV column with the file path relative to ``root``.
        label_column: CSV column with the class name.
        classes: class names in label order (default the sorted distinct labels); other labels are bad rows.
        split_column: CSV column giving the split; the default ``split`` is used when present, another name must
            exist.
        group_column: CSV column of group ids (patients) for a grouped split; ``None``: split by file.
        dims: 2 (slices; the middle one of a volume unless ``slice_index``) or 3 (volumes).
        slice_index: which slice of a volume to take for ``dims=2``.
        size: resize to ``size`` per axis (or a list of sizes); ``None`` keeps the files' shape (must agree).
        window: ``"percentile"``, ``"minmax"``, ``"dicom"`` (the file's window) or ``[centre, width]``.
        percentiles: ``(low, high)`` percent for ``window="percentile"``.
        val_fraction: share held out for validation (without a split column).
        test_fraction: share held out for testing (without a split column).
        seed: seed of the split and of the ``n`` subset.
        n: keep a seeded stratified subset of ``n`` samples of the split.
        skip_bad: skip (and count) unreadable or missing files and unknown labels instead of stopping.

    Shape:
        images ``(N, 1, H, W)`` (dims=2) or ``(N, 1, D, H, W)`` (dims=3) float32 in [0, 1]; targets ``(N,)``.
"""


def _csv_present(path: Path) -> str:
    return "yes (labels.csv)" if (path / "labels.csv").is_file() else f"no (labels.csv missing in {path})"


register_location("dicom-folder", Location(None, "DICOM files (.dcm) and labels.csv", _csv_present))
register_location("nifti-folder", Location(None, "NIfTI files (.nii/.nii.gz) and labels.csv", _csv_present))


@DATASETS.register(
    "dicom-folder",
    task_kind="binary or multiclass (labels CSV)",
    help="a folder of DICOM files or series + labels.csv; windowed to [0, 1] (extra: dicom)",
)
def dicom_folder(
    *, split: str = "train", root: str | None = None, labels: str = "labels.csv", file_column: str = "file",
    label_column: str = "label", classes: Sequence[str] | None = None, split_column: str | None = "split",
    group_column: str | None = None, dims: int = 2, slice_index: int | None = None,
    size: int | Sequence[int] | None = None, window: str | Sequence[float] = "percentile",
    percentiles: Sequence[float] = (0.5, 99.5), val_fraction: float = 0.1, test_fraction: float = 0.2,
    seed: int = 0, n: int | None = None, skip_bad: bool = False,
) -> ArrayDataset:  # fmt: skip
    opts = {k: v for k, v in locals().items() if k not in ("split", "root")}
    return load_folder("dicom-folder", _dicom_reader, split, root, opts)


@DATASETS.register(
    "nifti-folder",
    task_kind="binary or multiclass (labels CSV)",
    help="a folder of NIfTI volumes (.nii/.nii.gz) + labels.csv; slices or volumes (extra: dicom)",
)
def nifti_folder(
    *, split: str = "train", root: str | None = None, labels: str = "labels.csv", file_column: str = "file",
    label_column: str = "label", classes: Sequence[str] | None = None, split_column: str | None = "split",
    group_column: str | None = None, dims: int = 3, slice_index: int | None = None,
    size: int | Sequence[int] | None = None, window: str | Sequence[float] = "percentile",
    percentiles: Sequence[float] = (0.5, 99.5), val_fraction: float = 0.1, test_fraction: float = 0.2,
    seed: int = 0, n: int | None = None, skip_bad: bool = False,
) -> ArrayDataset:  # fmt: skip
    opts = {k: v for k, v in locals().items() if k not in ("split", "root")}
    return load_folder("nifti-folder", R.read_nifti, split, root, opts)


dicom_folder.__doc__ = (
    "DICOM files (2D slices, multi-frame files or series folders) with a labels CSV.\n" + _DOC_OPTIONS
)
nifti_folder.__doc__ = "NIfTI volumes with a labels CSV, as 3D volumes or 2D slices.\n" + _DOC_OPTIONS
