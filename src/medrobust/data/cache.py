"""An on-disk cache of a dataset's splits, for data larger than memory (``medrobust cache``).

:func:`write_cache` converts the splits of any registered loader once into a folder of plain ``.npy`` files and a
``manifest.json``; the ``cache`` dataset (:func:`cached`, ``--dataset cache --data-root FOLDER``) reads it back as
:class:`CachedDataset`, whose images stay on disk and are read batch by batch
(:class:`~medrobust.data.npy_rows.NpyRows`). Training, evaluation and reports then hold one batch of images in
memory instead of the split. Targets and per-sample extras (labels, landmarks, case ids) are loaded whole.

Layout of a cache folder::

    manifest.json              format, dataset name, loader options, per split: info, n, shapes, dtypes
    train/images.npy           (N, C, *spatial) uint8 or float32, exactly as the loader gave them
    train/targets.npy          (N, ...) the loader's targets
    train/extra-NAME.npy       one per per-sample extra array
    val/…, test/…

Each split is written ``chunk`` rows at a time through ``np.lib.format.open_memmap`` (the file is sized once and
filled in place), into a temporary folder renamed to the destination only when every split is complete, so an
interrupted conversion leaves no half cache behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from medrobust.data.base import SPLITS, ArrayDataset, DatasetInfo, Rows
from medrobust.data.npy_rows import NpyRows
from medrobust.data.registry import DATASETS, load
from medrobust.errors import ConfigError, DataError

FORMAT = "medrobust.cache/1"
MANIFEST = "manifest.json"


def write_cache(
    name: str,
    out: str | Path,
    *,
    root: str | None = None,
    options: dict[str, Any] | None = None,
    splits: Sequence[str] = SPLITS,
    chunk: int = 256,
) -> dict[str, Any]:
    """Convert the ``splits`` of dataset ``name`` (loader ``options``, files under ``root``) into cache ``out``.

    Splits are loaded and written one at a time, so the conversion holds at most one split as the loader returns
    it (loaders read a split whole) plus nothing of the others.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        ConfigError: ``out`` exists already, or ``name`` is itself ``cache``.
    """
    if name == "cache":
        raise ConfigError("the dataset is already a cache; pass the dataset it was made from")
    options = dict(options or {})
    source = {"dataset": name, "root": root, "options": options}
    return write_splits(out, source, (load(name, split, root=root, **options) for split in splits), chunk)


def write_splits(
    out: str | Path, source: dict[str, Any], datasets: Iterable[ArrayDataset], chunk: int = 256
) -> dict[str, Any]:
    """Write ``datasets`` (taken one at a time from the iterable, each under its ``info.split``) into the new cache
    folder ``out``, atomically: into a temporary folder beside it, renamed to ``out`` once complete.

    Args:
        source: where the data came from (``dataset``, ``root``, ``options``), kept in the manifest.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        ConfigError: ``out`` exists already.
    """
    out = Path(out)
    if out.exists():
        raise ConfigError(f"--out {out} exists; choose a new folder (a cache is written once)")
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        manifest: dict[str, Any] = {"format": FORMAT, **source, "splits": {}}
        for ds in datasets:
            manifest["splits"][ds.info.split] = write_split(tmp / ds.info.split, ds, chunk)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def write_split(folder: Path, ds: ArrayDataset, chunk: int = 256) -> dict[str, Any]:
    """Write one split's images (``chunk`` rows at a time), targets and extras into ``folder``; returns its entry
    of the manifest."""
    folder.mkdir(parents=True)
    images = _write_rows(folder / "images.npy", ds.images, chunk)
    targets = _write_rows(folder / "targets.npy", ds.targets, chunk)
    extras = {}
    for key, value in ds.extras.items():
        array = np.asarray(value)
        if len(array) != len(ds):
            raise DataError(f"extra {key!r} has {len(array)} rows for {len(ds)} samples; it is not per-sample")
        np.save(folder / f"extra-{key}.npy", array, allow_pickle=False)
        extras[key] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    return {"n": len(ds), "info": ds.info.to_dict(), "images": images, "targets": targets, "extras": extras}


def _write_rows(path: Path, rows: Rows, chunk: int) -> dict[str, Any]:
    dtype = np.dtype(str(rows.dtype).removeprefix("torch."))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(rows.shape))
    for start in range(0, len(rows), chunk):
        out[start : start + chunk] = rows[start : start + chunk].numpy()
    out.flush()
    del out
    return {"shape": list(rows.shape), "dtype": str(dtype)}


class CachedDataset(ArrayDataset):
    """A split of a cache folder (:func:`write_cache`): images read from disk per batch, targets in memory.

    Args:
        folder: the cache folder (holding ``manifest.json``).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Shape:
        As :class:`~medrobust.data.base.ArrayDataset`; ``images`` is an
        :class:`~medrobust.data.npy_rows.NpyRows` ``(N, C, *spatial)``.
    """

    def __init__(self, folder: str | Path, split: str) -> None:
        folder = Path(folder)
        entry = read_manifest(folder)["splits"].get(split)
        if entry is None:
            raise DataError(f"cache {folder} holds no {split!r} split; write it with medrobust cache --splits")
        raw = entry["info"]
        info = DatasetInfo(**{**raw, "spatial": tuple(raw["spatial"]), "class_names": tuple(raw["class_names"])})
        images = NpyRows(folder / split / "images.npy")
        if list(images.shape) != entry["images"]["shape"]:
            raise DataError(f"{images.path} has shape {tuple(images.shape)}; the manifest says {entry['images']}")
        targets = _load(folder / split / "targets.npy")
        self.images = images
        self.targets = torch.from_numpy(targets)
        self.info = DatasetInfo(**{**info.to_dict(), "extra": {**info.extra, "cache": str(folder)}})
        self.extras = {key: _load(folder / split / f"extra-{key}.npy") for key in entry["extras"]}
        if len(self.targets) != len(images):
            raise DataError(f"cache {folder} ({split}): {len(images)} images but {len(self.targets)} targets")

    def __repr__(self) -> str:
        return f"CachedDataset({self.info.name!r}, split={self.info.split!r}, n={len(self)}, on disk)"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The cache folder's manifest, checked for its format.

    Raises:
        DataError: no manifest, or one of another format.
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder} is not a medrobust cache (no {MANIFEST}); write one with 'medrobust cache'")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path} has format {manifest.get('format')!r}; this medrobust reads {FORMAT!r}")
    return manifest


def _load(path: Path) -> NDArray[Any]:
    """A small per-split array (targets, extras), read whole."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}") from None


@DATASETS.register(
    "cache",
    task_kind="that of the cached dataset",
    help="a folder written by 'medrobust cache' (any dataset, images read from disk per batch)",
)
def cached(*, split: str = "train", root: str | None = None) -> ArrayDataset:
    """A split of the cache folder ``root`` (``--dataset cache --data-root FOLDER``), see :class:`CachedDataset`."""
    if root is None:
        raise ConfigError("dataset 'cache' needs --data-root FOLDER (a folder written by 'medrobust cache')")
    return CachedDataset(root, split)
