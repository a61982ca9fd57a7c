"""``medrobust export``: a run's model as a safetensors file that rebuilds to the same outputs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

import medrobust
from medrobust.cli import main
from medrobust.errors import DataError
from medrobust.training.export import load_exported, read_metadata
from medrobust.training.tensorfile import load_tensors, save_tensors

TINY = ["--set", "data.options={size: 32, n: 48}", "--epochs", "1", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--out", str(out), *TINY]) == 0
    return out


def test_export_round_trip_gives_the_same_outputs(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    assert main(["export", str(run_dir), "--out", str(path)]) == 0
    original, rebuilt = medrobust.load_model(run_dir), load_exported(path)
    x = medrobust.data.load("phantom-ct", split="test", size=32, n=48).batch(torch.arange(8))[0]
    assert torch.equal(original(x), rebuilt(x)) and not rebuilt.training
    tensors, _ = load_tensors(path)
    assert torch.equal(tensors["mean"], original.mean) and not torch.equal(tensors["mean"], torch.zeros(1))
    meta = read_metadata(path)
    assert meta["architecture"] == "small_cnn" and meta["in_channels"] == 1 and meta["num_outputs"] == 1
    assert meta["dataset"]["name"] == "phantom-ct" and meta["medrobust_version"] == medrobust.__version__
    assert meta["config"]["model"]["name"] == "small_cnn" and meta["task"]["kind"] == "binary"


def test_tensor_file_round_trips_every_dtype(tmp_path: Path) -> None:
    tensors = {
        "f32": torch.randn(2, 3),
        "bf16": torch.randn(4).to(torch.bfloat16),
        "i64": torch.arange(5),
        "u8": torch.arange(3, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(1.5, dtype=torch.float64),
        "empty": torch.zeros(0, 4),
    }
    save_tensors(tmp_path / "t.safetensors", tensors, {"a": "b"})
    got, meta = load_tensors(tmp_path / "t.safetensors")
    assert meta == {"a": "b"} and got.keys() == tensors.keys()
    assert all(got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in tensors.items())


def _header(header: dict[str, object], data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x07",
        struct.pack("<Q", 1 << 60) + b"{}",
        _header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),
        _header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
        _header({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
        _header({"w": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        _header({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8),
        _header({"__metadata__": {"a": 1}}),
        _header([]),  # type: ignore[arg-type]
        b"\x02\0\0\0\0\0\0\0\xff\xfe",
    ],
)
def test_corrupt_tensor_files_are_one_line_errors(tmp_path: Path, blob: bytes) -> None:
    (tmp_path / "bad.safetensors").write_bytes(blob)
    with pytest.raises(DataError, match="not a valid safetensors file") as info:
        load_tensors(tmp_path / "bad.safetensors")
    assert "\n" not in str(info.value)


def test_foreign_or_mismatched_exports_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_tensors(tmp_path / "plain.safetensors", {"w": torch.ones(1)}, {})
    with pytest.raises(DataError, match="not written by 'medrobust export'"):
        load_exported(tmp_path / "plain.safetensors")
    meta = {"format": "medrobust.export/1", "architecture": "small_cnn", "options": "{}"}
    save_tensors(tmp_path / "bad.safetensors", {"w": torch.ones(1)}, {**meta, "in_channels": "1", "num_outputs": "1"})
    with pytest.raises(DataError, match="does not match its architecture"):
        load_exported(tmp_path / "bad.safetensors")
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_files_are_compatible_with_the_safetensors_package(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    tensors = {"w": torch.randn(3, 2), "b": torch.arange(4, dtype=torch.int32), "h": torch.randn(2).half()}
    save_tensors(tmp_path / "ours.safetensors", tensors, {"k": "v"})
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert all(torch.equal(theirs[k], v) for k, v in tensors.items())
    st.save_file(tensors, str(tmp_path / "theirs.safetensors"), metadata={"k": "v"})
    got, meta = load_tensors(tmp_path / "theirs.safetensors")
    assert meta == {"k": "v"} and all(torch.equal(got[k], v) for k, v in tensors.items())
