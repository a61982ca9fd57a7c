"""Read and write the safetensors file format: named tensors and string metadata, with no pickled code.

The layout (https://github.com/huggingface/safetensors): an 8-byte little-endian header length ``N``, ``N``
bytes of JSON — ``{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}`` —
padded with spaces to a multiple of 8, then the tensors' little-endian bytes, back to back. Files written here
load with ``safetensors.torch.load_file`` and the reverse (tested where the ``safetensors`` package is
installed); reading checks every offset, so a corrupt or hostile file gives a one-line :class:`DataError`.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import torch

from medrobust.errors import DataError
from medrobust.training.checkpoint import atomic_write_bytes

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in DTYPES.items()}
_MAX_HEADER = 100_000_000  # the reference reader's limit


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write ``tensors`` (moved to CPU) and ``metadata`` to ``path`` atomically in the safetensors format."""
    if sys.byteorder != "little":
        raise RuntimeError("writing safetensors needs a little-endian machine")
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    chunks: list[bytes] = []
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _NAMES:
            raise TypeError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors cannot store")
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    atomic_write_bytes(path, struct.pack("<Q", len(text)) + text + b"".join(chunks))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file.

    Raises:
        DataError: one line if the file is missing, truncated or its header does not describe its bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"safetensors file {str(path)!r} not found")
    blob = path.read_bytes()
    try:
        return _parse(blob)
    except (ValueError, TypeError, KeyError, RuntimeError, UnicodeDecodeError, struct.error) as e:
        raise DataError(f"{str(path)!r} is not a valid safetensors file ({e}); export it again") from None


def _parse(blob: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    (size,) = struct.unpack("<Q", blob[:8])
    if size > min(_MAX_HEADER, len(blob) - 8):
        raise ValueError(f"header length {size} exceeds the file")
    header = json.loads(blob[8 : 8 + size].decode())
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("__metadata__ must map names to strings")
    data = memoryview(blob)[8 + size :]
    tensors: dict[str, torch.Tensor] = {}
    spans: list[tuple[int, int]] = []
    for name, entry in header.items():
        dtype = DTYPES[entry["dtype"]]
        shape = [int(d) for d in entry["shape"]]
        begin, end = (int(v) for v in entry["data_offsets"])
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if (
            min(shape, default=0) < 0
            or not 0 <= begin <= end <= len(data)
            or end - begin != math.prod(shape) * itemsize
        ):
            raise ValueError(f"tensor {name!r}: offsets {begin}..{end} do not fit shape {shape} of {entry['dtype']}")
        raw = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.uint8) if end > begin else torch.empty(0)
        tensors[name] = raw.to(torch.uint8).view(dtype).reshape(shape)
        spans.append((begin, end))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise ValueError("tensor data overlaps or leaves gaps")
        covered = end
    if covered != len(data):
        raise ValueError(f"{len(data) - covered} bytes after the last tensor")
    return tensors, {str(k): v for k, v in metadata.items()}
