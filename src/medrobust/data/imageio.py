"""Decoding image files (any format Pillow reads) into uint8 arrays, and the bad-file policy.

Bad files (unreadable, truncated, missing, wrong shape) stop loading with a one-line :class:`DataError` naming
the file, unless the user asked to skip them (``skip_bad=True``, ``--skip-bad``); skipped files are then counted
in the metadata (``extra['skipped_bad']``) and reported in one line on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from medrobust.errors import ConfigError, DataError, one_line

T = TypeVar("T")
COLORS = {"grayscale": 1, "rgb": 3}
_SKIP_HINT = "fix or remove it, or pass --skip-bad (skip_bad=true) to skip bad files"


class BadFiles:
    """Collects bad files when skipping is allowed; raises on the first one otherwise.

    Args:
        dataset: dataset name, for the report line.
        skip: skip bad files (count them) instead of raising.
    """

    def __init__(self, dataset: str, skip: bool) -> None:
        self.dataset = dataset
        self.skip = skip
        self.items: list[tuple[str, str]] = []

    def fail(self, path: str | Path, reason: str) -> None:
        """Record (or raise for) the bad file ``path``."""
        reason = one_line(reason)
        if not self.skip:
            raise DataError(f"{path}: {reason}; {_SKIP_HINT}")
        self.items.append((str(path), reason))

    def report(self, extra: dict[str, Any], split: str) -> None:
        """Add the count (and the first few files) to ``extra`` and print one line on stderr if any."""
        if not self.skip:
            return
        extra["skipped_bad"] = len(self.items)
        if self.items:
            extra["skipped_files"] = [f"{p}: {r}" for p, r in self.items[:20]]
            first = f"{self.items[0][0]} ({self.items[0][1]})"
            print(f"{self.dataset} ({split}): skipped {len(self.items)} bad file(s), first {first}", file=sys.stderr)


def progress(items: Sequence[T], dataset: str) -> Iterable[T]:
    """``items`` with a progress bar when there are many and stderr is a terminal."""
    return tqdm(items, desc=f"{dataset}: reading files", disable=None if len(items) > 200 else True, leave=False)


def image_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``224`` or ``[H, W]`` → ``(H, W)``; ``None`` keeps the files' own size (they must then all agree)."""
    if size is None:
        return None
    hw = sizes(size, 2, "image size must be a positive int or [height, width]")
    return hw[0], hw[1]


def sizes(size: object, dims: int, what: str) -> tuple[int, ...]:
    """``n`` or ``[n_1, …, n_dims]`` → ``dims`` positive ints; anything else raises ``ConfigError(what, got …)``."""
    values = [size] * dims if isinstance(size, (int, float, str)) else size
    try:
        shape = tuple(int(v) for v in values)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != dims or min(shape) < 1:
        raise ConfigError(f"{what}, got {size!r}")
    return shape


def channels_of(color: str) -> int:
    """``"grayscale"`` → 1, ``"rgb"`` → 3."""
    if color not in COLORS:
        raise ConfigError(f"unknown color {color!r}; use 'grayscale' or 'rgb'")
    return COLORS[color]


def read_image(path: Path, *, size: tuple[int, int] | None, channels: int) -> NDArray[np.uint8]:
    """Decode one image, convert it to grey or RGB and resize it (bilinear, antialiased).

    16-bit greyscale files (common for X-rays) are scaled by 255/65535; float images by their own range.

    Raises:
        DataError: unreadable, truncated or missing file (the message names it).

    Shape:
        ``(C, H, W)`` uint8 with ``C = channels``.
    """
    try:
        with Image.open(path) as opened:
            opened.load()
            im = _to_8bit(opened).convert("L" if channels == 1 else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable or truncated image ({one_line(err)})") from None
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def _to_8bit(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            arr = arr / 65535.0
        else:
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8))
    return im


def read_images(
    paths: Sequence[Path], *, size: tuple[int, int] | None, channels: int, bad: BadFiles
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Decode ``paths``; bad files go through ``bad`` (raise, or skip and count).

    Without ``size`` every image must have the first one's shape (else a :class:`DataError` naming the file).

    Shape:
        → images ``(K, C, H, W)`` uint8 and the ``(K,)`` positions in ``paths`` that were kept.
    """
    images: list[NDArray[np.uint8]] = []
    kept: list[int] = []
    for i, path in enumerate(progress(paths, bad.dataset)):
        try:
            arr = read_image(path, size=size, channels=channels)
        except DataError as err:
            bad.fail(path, str(err).removeprefix(f"{path}: "))
            continue
        if images and arr.shape != images[0].shape:
            bad.fail(path, f"image is {arr.shape[1:]} but {paths[kept[0]]} is {images[0].shape[1:]}; pass size=")
            continue
        images.append(arr)
        kept.append(i)
    if not images:
        return np.zeros((0, channels, *(size or (1, 1))), np.uint8), np.zeros(0, np.int64)
    return np.stack(images), np.asarray(kept, dtype=np.int64)
