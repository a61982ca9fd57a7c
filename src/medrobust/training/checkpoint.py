"""Atomic checkpoints and RNG-state capture, so ``--resume`` continues bit-exactly.

Checkpoints are loaded with ``torch.load(..., weights_only=True)``: only tensors and plain containers
(dict, list, tuple, str, int, float, bool, None) are unpickled, so opening a checkpoint never runs code from it.
A file that needs any other pickled object is refused with a one-line :class:`DataError`. Checkpoints written
before this format (NumPy's RNG state stored as a NumPy array) load through a narrow allow-list of the NumPy
array-reconstruction globals and nothing else.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medrobust import faults
from medrobust.errors import DataError, WriteError

CHECKPOINT = "checkpoint.pt"
TEMPORARY = ".medrobust-tmp"  # the suffix of atomic writes' temporary files (``.NAME.XXXX.medrobust-tmp``)
# The only globals a checkpoint of the first format (NumPy's RNG state as a uint32 array) needs, by the names
# NumPy 2 and NumPy 1 pickle them under. Rebuilding an array of plain numbers runs no user code.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy._core.multiarray._reconstruct (numpy.core... in NumPy 1)
_NUMPY_GLOBALS: dict[str, Any] = {
    "numpy._core.multiarray._reconstruct": _RECONSTRUCT,
    "numpy.core.multiarray._reconstruct": _RECONSTRUCT,
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    "numpy.dtypes.UInt32DType": type(np.dtype(np.uint32)),  # the key array's dtype, set by the unpickler
}


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Raises:
        WriteError: one line if the write fails (disk full, file-size limit, read-only folder); ``path`` then
            still holds its previous content (or does not exist) and no temporary file is left behind.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY)
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            faults.hit("write.partial")
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        faults.hit("write.temp")
        os.replace(tmp, path)
        faults.hit("write.replaced")
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WriteError(
                f"could not write {path} ({e.strerror or e}); its previous version is intact: "
                "free disk space or choose a writable folder, then run again"
            ) from None
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that a process killed inside :func:`atomic_write_bytes` left in ``folder``.

    Call it only while holding the folder's lock (:func:`~medrobust.training.lock.run_lock`), so that no live
    writer's temporary file is removed. Returns the files removed.
    """
    stale = sorted(Path(folder).glob(f".*{TEMPORARY}"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` atomically (a crash never leaves a half-written checkpoint).

    Raises:
        TypeError: ``state`` holds an object that ``weights_only`` loading would refuse (a programming error:
            method states, RNG states and records must be tensors and plain containers).
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(buffer)
    if unsafe:
        raise TypeError(f"checkpoint state holds objects that load only unsafely: {', '.join(sorted(unsafe))}")
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` without running any code stored in it.

    Raises:
        DataError: one line if the file is missing, corrupt or truncated, holds pickled objects other than
            tensors and plain containers (refused unopened), or is not a medrobust checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {str(path)!r} not found")
    try:
        state = _load(path, {})
    except pickle.UnpicklingError:
        # weights_only refused a global: allow only the NumPy array globals of the first checkpoint format.
        unsafe = _unsafe_globals(path)
        refused = sorted(set(unsafe) - set(_NUMPY_GLOBALS))
        if refused:
            raise DataError(
                f"checkpoint {str(path)!r} holds pickled objects that are not weights ({', '.join(refused[:3])}); "
                "it was refused unopened: load only checkpoints written by medrobust"
            ) from None
        state = _load(path, _NUMPY_GLOBALS)
        if isinstance(state, dict) and isinstance(state.get("rng"), dict):
            state["rng"] = _upgrade_rng(state["rng"])
    if not isinstance(state, dict) or "model" not in state:
        raise DataError(f"{str(path)!r} is not a medrobust checkpoint (no 'model' entry)")
    return state


def _load(path: Path, allowed: dict[str, Any]) -> Any:
    """``torch.load`` with ``weights_only=True`` and the ``allowed`` extra globals; corrupt files → DataError."""
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals([(v, k) for k, v in allowed.items()]):
            warnings.simplefilter("ignore")  # e.g. torch's note on a pickle protocol it did not write
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if allowed:
            raise DataError(f"checkpoint {str(path)!r} is corrupt or not a medrobust checkpoint") from None
        raise
    except Exception as e:  # torch raises many types for truncated/corrupt files
        raise DataError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}); retrain or restore it"
        ) from None


def _unsafe_globals(path: Path) -> list[str]:
    """The globals the pickle in ``path`` names, read without unpickling it."""
    try:
        with path.open("rb") as f:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(f))
    except Exception:  # not a zip checkpoint (a raw pickle, the legacy tar format) or unreadable
        raise DataError(
            f"checkpoint {str(path)!r} is not in torch's zip format and does not load as weights only; "
            "it was refused unopened: load only checkpoints written by medrobust"
        ) from None


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Capture the global (torch, NumPy, Python, CUDA) and the named generators' states as tensors and numbers."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        **_plain_rng(np.random.get_state(legacy=True), random.getstate()),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss_next"]))
    for k, g in generators.items():
        g.set_state(state["generators"][k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain_rng(numpy_state: Any, python_state: tuple[Any, ...]) -> dict[str, Any]:
    """NumPy's legacy state tuple and Python's ``random.getstate()`` as tensors and numbers."""
    kind, key, pos, has_gauss, cached = numpy_state
    version, internal, gauss_next = python_state
    return {
        "numpy": {
            "kind": str(kind),
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": None if gauss_next is None else float(gauss_next),
        },
    }


def _upgrade_rng(rng: dict[str, Any]) -> dict[str, Any]:
    """The first format's RNG entry (NumPy's and Python's state tuples) in the current format."""
    if isinstance(rng.get("numpy"), tuple) and isinstance(rng.get("python"), tuple):
        return {**rng, **_plain_rng(rng["numpy"], rng["python"])}
    return rng
