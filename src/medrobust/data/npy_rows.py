"""Rows of a ``.npy`` file read on demand with positional reads: only the rows asked for enter the process.

:class:`NpyRows` behaves like the leading-axis indexing of a tensor (``rows[i]``, ``rows[a:b]``,
``rows[index_tensor]``) over a ``(N, ...)`` array stored on disk as a plain ``.npy`` file. Unlike
``np.load(mmap_mode="r")`` it maps nothing: a mapped file counts whole towards a process's address space
(``RLIMIT_AS``) and every page it touched stays in its resident set until the kernel needs it back. Here each batch
is read with ``os.preadv`` straight into a fresh array, so the process holds the batch and nothing else, and the
file's pages live in the kernel's page cache, which it evicts under memory pressure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from medrobust.errors import DataError


def npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """The shape, dtype and data offset (bytes) of a C-ordered ``.npy`` file, from its header alone.

    Raises:
        DataError: not a ``.npy`` file, or one in Fortran order or of Python objects.
    """
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except ValueError as e:
        raise DataError(f"{path} is not a .npy file ({e})") from None
    if fortran or dtype.hasobject:
        raise DataError(f"{path} must hold a C-ordered array of numbers")
    return tuple(shape), dtype, offset


class NpyRows:
    """Leading-axis rows of a ``(N, ...)`` ``.npy`` file, read on demand (see the module docstring).

    Args:
        path: the ``.npy`` file (C order, numeric dtype).

    Shape:
        ``rows[i]`` → ``(...)``; ``rows[a:b]`` → ``(b - a, ...)``; ``rows[index]`` with an integer tensor or
        array ``(B,)`` → ``(B, ...)``; always a new CPU tensor of the file's dtype.
    """

    def __init__(self, path: str | Path) -> None:
        self._fd: int | None = None
        self._pid = -1
        self.path = Path(path)
        shape, dtype, self._offset = npy_layout(self.path)
        if len(shape) < 1:
            raise DataError(f"{self.path} holds a scalar; expected rows (N, ...)")
        self._np_dtype = dtype
        self.shape = torch.Size(shape)
        self.dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def __len__(self) -> int:
        return int(self.shape[0])

    def numel(self) -> int:
        """Elements of the whole array (as ``Tensor.numel``)."""
        return int(np.prod(tuple(self.shape), dtype=np.int64))

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return torch.from_numpy(self._read_range(start, max(stop, start)))
            index = np.arange(start, stop, step)
        if isinstance(index, (int, np.integer)):
            i = int(index) + (len(self) if int(index) < 0 else 0)
            return torch.from_numpy(self._read_rows(np.array([i]))[0])
        if isinstance(index, Tensor):
            index = index.cpu().numpy()
        rows = np.asarray(index)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise TypeError(f"NpyRows takes an int, a slice or a 1-D integer index, not {type(index).__name__}")
        return torch.from_numpy(self._read_rows(np.where(rows < 0, rows + len(self), rows)))

    def __repr__(self) -> str:
        return f"NpyRows({str(self.path)!r}, shape={tuple(self.shape)}, dtype={self.dtype})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}  # a file descriptor does not travel to other processes

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # reopen after a fork (data-loader workers)
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def _read_range(self, start: int, stop: int) -> NDArray[Any]:
        out = np.empty((stop - start, *self.shape[1:]), dtype=self._np_dtype)
        if start < 0 or stop > len(self):
            raise IndexError(f"rows {start}..{stop} outside 0..{len(self)} of {self.path}")
        self._read_into(out.reshape(-1).view(np.uint8), self._offset + start * self._row_bytes)
        return out

    def _read_rows(self, rows: NDArray[Any]) -> NDArray[Any]:
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1} of {self.path}")
        out = np.empty((len(rows), *self.shape[1:]), dtype=self._np_dtype)
        if out.size == 0:
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        for j, row in enumerate(rows.tolist()):
            self._read_into(flat[j], self._offset + row * self._row_bytes)
        return out

    def _read_into(self, buffer: NDArray[np.uint8], offset: int) -> None:
        done = 0
        while done < buffer.nbytes:
            got = os.preadv(self._file(), [buffer[done:].data], offset + done)
            if got == 0:
                raise DataError(f"{self.path} ends early: it was truncated after it was written")
            done += got

    def close(self) -> None:
        """Close the file (it reopens on the next read)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        self.close()
