"""IDX files (LeCun's MNIST format) and the Fashion-MNIST loader.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, ``ndim`` big-endian int32 sizes, then the
data in row-major, big-endian order; the distributed files are gzip-compressed. Fashion-MNIST (Xiao, Rasul &
Vollgraf 2017, arXiv 1708.07747) ships 60,000 training and 10,000 test images of 28×28 pixels in 10 classes.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.registry import DATASETS
from medrobust.data.sampling import stratified_subset
from medrobust.errors import ConfigError, DataError

DEBIAN_FOLDER = "/usr/share/datasets/fashion-mnist"
"""Where Debian's ``dataset-fashion-mnist`` package installs the four gzip IDX files."""

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
VAL_SEED = 0
"""Fixed seed of the held-out validation part, so that ``seed`` (subsets) never moves samples between splits."""

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> NDArray[Any]:
    """Read an IDX file, gzip-compressed or not (told apart by the gzip magic bytes).

    Args:
        path: the file.

    Returns:
        A writable array in native byte order with the file's dtype and dimensions.

    Shape:
        ``(d_1, ..., d_ndim)`` as stored in the header, e.g. ``(60000, 28, 28)`` for images, ``(60000,)`` for labels.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _DTYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'none'}); re-download it")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes); re-download the file")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: truncated or padded IDX data ({len(raw) - header} bytes for dims {dims}, expected {expected});"
            " re-download the file"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: corrupt or truncated gzip data ({err}); re-download the file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


def find_idx(folder: Path, stem: str, *, default_root: bool) -> Path:
    """The file ``stem.gz`` or ``stem`` in ``folder``; a one-line :class:`DataError` saying how to get it."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    how = (
        "pass --data-root DIR (root=...) or run `apt-get install dataset-fashion-mnist`"
        if default_root
        else "check --data-root (root=...) or run `apt-get install dataset-fashion-mnist` and omit it"
    )
    raise DataError(f"fashion-mnist: {stem}.gz (or {stem}) not found in {folder}; {how}")


def read_pair(folder: Path, part: str, *, default_root: bool) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` of the official ``part`` (``"train"`` or ``"test"``)."""
    image_path, label_path = (find_idx(folder, stem, default_root=default_root) for stem in FILES[part])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{image_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{label_path}: expected integer labels (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels")
    bad = (labels < 0) | (labels >= len(CLASS_NAMES))
    if bad.any():
        raise DataError(f"{label_path}: label {int(labels[bad][0])} is outside 0..{len(CLASS_NAMES) - 1}")
    return images[:, None], labels.astype(np.int64)


def split_indices(labels: NDArray[np.int64], split: str, val_size: int) -> NDArray[np.int64]:
    """Indices into the official training part for ``split`` (``"train"`` or ``"val"``).

    Shape:
        labels ``(N,)`` → ``(N - val_size,)`` for train, ``(val_size,)`` for val.
    """
    if not 0 <= val_size < len(labels):
        raise ConfigError(f"val_size={val_size} must lie in 0..{len(labels) - 1} (official training images)")
    if split == "val" and val_size == 0:
        raise ConfigError("val_size=0 leaves no validation split; use val_size >= 1")
    held = stratified_subset(labels, val_size, VAL_SEED) if val_size else np.empty(0, dtype=np.int64)
    if split == "val":
        return held
    return np.setdiff1d(np.arange(len(labels)), held)


@DATASETS.register(
    "fashion-mnist",
    task_kind="multiclass",
    help="Fashion-MNIST (IDX files; Debian: apt-get install dataset-fashion-mnist), 10 classes, 1×28×28",
    files=tuple(f"{stem}.gz" for pair in FILES.values() for stem in pair),
)
def fashion_mnist(
    *, split: str = "train", root: str | None = None, val_size: int = 5000, n: int | None = None, seed: int = 0
) -> ArrayDataset:
    """Fashion-MNIST: ``train``/``val`` from the official training set, ``test`` = the official t10k set.

    Args:
        split: ``"train"`` (official train minus the held-out part), ``"val"`` (a stratified held-out part of the
            official train set, drawn with the fixed seed :data:`VAL_SEED`) or ``"test"``.
        root: folder with the four IDX files (``.gz`` or not); default :data:`DEBIAN_FOLDER`.
        val_size: size of the held-out validation part.
        n: keep a seeded stratified subset of ``n`` samples of the split (quick CPU runs); ``None`` keeps all.
        seed: seed of that subset.

    Shape:
        images ``(N, 1, 28, 28)`` uint8; targets ``(N,)``.
    """
    folder = Path(root) if root is not None else Path(DEBIAN_FOLDER)
    images, labels = read_pair(folder, "test" if split == "test" else "train", default_root=root is None)
    extra: dict[str, Any] = {"root": str(folder)}
    if split != "test":
        keep = split_indices(labels, split, val_size)
        images, labels = images[keep], labels[keep]
        extra["split_rule"] = f"val = stratified {val_size} of the official train set (seed {VAL_SEED}); train = rest"
    if n is not None:
        keep = stratified_subset(labels, n, seed)
        images, labels = images[keep], labels[keep]
        extra["subset"] = f"seeded stratified subset of {n} (seed {seed})"
    info = DatasetInfo("fashion-mnist", "multiclass", 1, images.shape[2:], len(CLASS_NAMES), CLASS_NAMES, split, extra)
    return ArrayDataset(images, labels, info)
