"""Reading DICOM and NIfTI files into float arrays, intensity windowing to [0, 1], and resizing.

DICOM pixel values become modality values (Hounsfield units for CT) through ``RescaleSlope`` and
``RescaleIntercept`` (DICOM PS3.3 C.11.1); a window of centre ``c`` and width ``w`` then maps ``[c − w/2, c + w/2]``
linearly onto [0, 1] and clips (a simplification of the standard's VOI LUT, C.11.2.1.2); ``MONOCHROME1`` images
are inverted so that bright means dense. NIfTI voxels are read with their ``scl_slope``/``scl_inter`` applied
(nibabel ``get_fdata``), reoriented to the closest canonical (RAS+) orientation and stored as ``(D, H, W)`` =
``(z, y, x)``. Needs the optional extra ``dicom`` (pydicom, nibabel).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from medrobust.errors import ConfigError, DataError, one_line

FloatArray = NDArray[np.float32]


def require(module: str, loader: str) -> Any:
    """Import ``module`` or raise a one-line :class:`DataError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"{loader} needs the {module} package: pip install 'medrobust[dicom]'") from None


def _dicom_values(ds: Any, path: Path) -> FloatArray:
    try:  # pixel data and rescale elements of a corrupt file raise many types when decoded
        raw = ds.pixel_array
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        return (np.asarray(raw, dtype=np.float32) * slope + intercept).astype(np.float32)
    except Exception as err:
        raise DataError(f"{path}: no readable pixel data ({type(err).__name__}: {one_line(err)})") from None


def read_dicom(path: Path) -> tuple[FloatArray, dict[str, Any]]:
    """One DICOM file → modality values ``(H, W)`` (or ``(F, H, W)`` multi-frame) and its display facts.

    Returns:
        ``(values, facts)`` with ``facts["window"]`` the file's first ``(centre, width)`` or ``None`` and
        ``facts["invert"]`` true for ``MONOCHROME1``; ``facts["order"]`` the key that sorts a series:
        ``ImagePositionPatient`` z (when present), then ``InstanceNumber``.
    """
    pydicom = require("pydicom", "dicom-folder")
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as err:  # InvalidDicomError, and many types from a corrupt element
        raise DataError(f"{path}: not a readable DICOM file ({one_line(err)})") from None
    values = _dicom_values(ds, path)
    try:  # pydicom decodes elements on access: a corrupt one raises any of many types here
        return values, _dicom_facts(ds, pydicom)
    except Exception as err:
        raise DataError(f"{path}: corrupt DICOM header ({type(err).__name__}: {one_line(err)})") from None


def _dicom_facts(ds: Any, pydicom: Any) -> dict[str, Any]:
    """The display window, MONOCHROME1 inversion and series order of a read DICOM dataset ``ds``."""
    centre, width = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    window = None
    if centre is not None and width is not None:
        first = [float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v) for v in (centre, width)]
        window = (first[0], first[1])
    position = getattr(ds, "ImagePositionPatient", None)
    z = float(position[2]) if position is not None and len(position) == 3 else None
    order = (z is None, z or 0.0, float(getattr(ds, "InstanceNumber", 0) or 0))
    invert = getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1"
    return {"window": window, "invert": invert, "order": order}


def read_dicom_series(folder: Path) -> tuple[FloatArray, dict[str, Any]]:
    """A folder of single-slice DICOM files → a volume ``(D, H, W)`` ordered by slice position z, then
    ``InstanceNumber``.

    Raises:
        DataError: no ``.dcm`` files, or a slice whose shape differs from the others (the message names it).
    """
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".dcm")
    if not files:
        raise DataError(f"{folder}: no .dcm files in this series folder")
    slices = [(read_dicom(p), p) for p in files]
    first_shape, first_path = slices[0][0][0].shape, slices[0][1]
    for (values, _), p in slices:
        if values.shape != first_shape:
            raise DataError(f"{p}: slice shape {values.shape} differs from {first_path} {first_shape} in the series")
        if values.ndim != 2:
            raise DataError(f"{p}: multi-frame file inside a series folder; name the file itself in the CSV")
    slices.sort(key=lambda s: s[0][1]["order"])
    return np.stack([s[0][0] for s in slices]), slices[0][0][1]


def read_nifti(path: Path) -> tuple[FloatArray, dict[str, Any]]:
    """A NIfTI file → volume ``(D, H, W)`` in closest-canonical orientation (``(z, y, x)`` voxel order).

    Raises:
        DataError: unreadable or truncated file, or not a 3D volume (trailing singleton axes are dropped).
    """
    channels, facts = read_nifti_channels(path)
    if channels.shape[0] != 1:
        shape = (*channels.shape[:0:-1], channels.shape[0])
        raise DataError(f"{path}: volume has shape {shape}; medrobust reads 3D volumes (x, y, z)")
    return channels[0], facts


def read_nifti_channels(path: Path) -> tuple[FloatArray, dict[str, Any]]:
    """A 3D or 4D NIfTI file (4th axis: modalities, as in the Medical Segmentation Decathlon) → ``(M, D, H, W)``
    in closest-canonical orientation (``(z, y, x)`` voxel order; ``M = 1`` for a 3D file).

    Raises:
        DataError: unreadable or truncated file, or neither 3D nor 4D (trailing singleton axes are dropped).
    """
    nib = require("nibabel", "nifti-folder")
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # nibabel raises many types (HeaderDataError, TypeError, …) for a corrupt header
        raise DataError(f"{path}: not a readable NIfTI file ({one_line(err)})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise DataError(f"{path}: volume has shape {data.shape}; medrobust reads 3D volumes (x, y, z)")
    return np.ascontiguousarray(data.transpose(3, 2, 1, 0)), {"window": None, "invert": False}


def check_window(window: object, percentiles: object) -> tuple[str | tuple[float, float], tuple[float, float]]:
    """Validate the ``window`` and ``percentiles`` options once; a one-line :class:`ConfigError` otherwise.

    Returns:
        ``window`` (a name, or ``(centre, width)`` floats) and ``percentiles`` as ``(low, high)`` floats.
    """
    if isinstance(window, str):
        if window not in ("percentile", "minmax", "dicom"):
            raise ConfigError(f"window must be 'percentile', 'minmax', 'dicom' or [centre, width > 0], got {window!r}")
        win: str | tuple[float, float] = window
    else:
        cw = _two_floats(window)
        if cw is None or not cw[1] > 0:
            raise ConfigError(f"window must be 'percentile', 'minmax', 'dicom' or [centre, width > 0], got {window!r}")
        win = cw
    pct = _two_floats(percentiles)
    if pct is None or not 0 <= pct[0] < pct[1] <= 100:
        raise ConfigError(f"percentiles must be [low, high] with 0 <= low < high <= 100, got {percentiles!r}")
    return win, pct


def _two_floats(values: object) -> tuple[float, float] | None:
    """``[a, b]`` of two finite numbers as floats, else ``None``."""
    if isinstance(values, (str, bytes)):
        return None
    try:
        out = tuple(float(v) for v in values)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return (out[0], out[1]) if len(out) == 2 and all(np.isfinite(out)) else None


def to_unit(
    values: FloatArray, window: str | Sequence[float], percentiles: Sequence[float], facts: dict[str, Any], path: Path
) -> FloatArray:
    """Map intensities to [0, 1].

    Args:
        values: modality values (any shape).
        window: ``"percentile"`` (per file, between ``percentiles``), ``"minmax"``, ``"dicom"`` (the file's own
            window) or ``[centre, width]`` in modality units (e.g. ``[40, 400]`` HU for soft tissue).
        percentiles: ``(low, high)`` in percent, for ``"percentile"``.
        facts: from the reader (``window``, ``invert``).
        path: for messages.
    """
    if window == "percentile":
        lo, hi = (float(v) for v in np.percentile(values, [percentiles[0], percentiles[1]]))
    elif window == "minmax":
        lo, hi = float(values.min()), float(values.max())
    elif window == "dicom":
        if facts.get("window") is None:
            raise DataError(f"{path}: has no WindowCenter/WindowWidth; use window=percentile or [centre, width]")
        c, w = facts["window"]
        lo, hi = c - w / 2, c + w / 2
    elif not isinstance(window, str) and len(window) == 2 and float(window[1]) > 0:
        c, w = float(window[0]), float(window[1])
        lo, hi = c - w / 2, c + w / 2
    else:
        raise ConfigError(f"window must be 'percentile', 'minmax', 'dicom' or [centre, width > 0], got {window!r}")
    out = np.clip((values - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(values)
    return (1.0 - out if facts.get("invert") else out).astype(np.float32)


def resize(values: FloatArray, shape: tuple[int, ...] | None) -> FloatArray:
    """Resize a 2D image (bilinear, antialiased) or 3D volume (trilinear) to ``shape``; ``None`` keeps it.

    Shape:
        ``(H, W)`` or ``(D, H, W)`` → ``shape``.
    """
    if shape is None or tuple(values.shape) == tuple(shape):
        return values
    x = torch.from_numpy(np.ascontiguousarray(values))[None, None]
    if values.ndim == 2:
        y = F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=True)
    else:
        y = F.interpolate(x, size=shape, mode="trilinear", align_corners=False)
    return y[0, 0].clamp_(0.0, 1.0).numpy()


def resize_labels(mask: NDArray[np.integer[Any]], shape: tuple[int, ...] | None) -> NDArray[np.int64]:
    """Resize an integer label map (nearest neighbour, pixel centres aligned); ``None`` keeps it.

    Shape:
        ``(H, W)`` or ``(D, H, W)`` → ``shape``.
    """
    if shape is None or tuple(mask.shape) == tuple(shape):
        return mask.astype(np.int64)
    x = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    return F.interpolate(x, size=shape, mode="nearest-exact")[0, 0].round().long().numpy()
