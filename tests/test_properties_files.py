"""Property-based tests (Hypothesis) of every dataset file parser: a valid small file, truncated, with a byte
changed, with bytes spliced in, or replaced by arbitrary bytes, either loads or gives a one-line
:class:`DataError`, and never another exception or a traceback.

Parsers: IDX (raw and gzip), MedMNIST ``.npz`` (through the whole loader, so the arrays it returns are checked
too), CSV, PNG and JPEG, DICOM and NIfTI. The example budget is fixed and the search derandomised.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from medrobust.data import load
from medrobust.data.csv_rows import read_csv_rows
from medrobust.data.idx import read_idx
from medrobust.data.imageio import read_image
from medrobust.errors import DataError
from test_properties import BUDGET, damaged


def loads_or_one_line(read: Callable[[], Any]) -> None:
    """``read()`` returns, or raises a one-line, non-empty :class:`DataError`."""
    try:
        read()
    except DataError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))


def write(tmp: pytest.TempPathFactory, name: str, blob: bytes) -> Path:
    path = tmp.mktemp("file") / name
    path.write_bytes(blob)
    return path


def _idx(images: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, images.ndim]) + np.array(images.shape, dtype=">u4").tobytes()
    return header + images.astype(np.uint8).tobytes()


IDX = _idx(np.arange(3 * 4 * 4).reshape(3, 4, 4) % 256)


@BUDGET
@given(blob=damaged(IDX), compress=st.booleans())
def test_any_idx_bytes_load_or_give_one_line(
    tmp_path_factory: pytest.TempPathFactory, blob: bytes, compress: bool
) -> None:
    path = write(tmp_path_factory, "images-idx3-ubyte", gzip.compress(blob, mtime=0) if compress else blob)
    loads_or_one_line(lambda: read_idx(path))


def _npz() -> bytes:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(3) % 2)[:, None].astype(np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@BUDGET
@given(data=st.data())
def test_any_medmnist_npz_bytes_load_or_give_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    path = write(tmp_path_factory, "pneumoniamnist.npz", data.draw(damaged(_npz())))
    loads_or_one_line(lambda: load("medmnist", "train", root=str(path.parent), flag="pneumoniamnist"))


def test_npz_member_names_holding_newlines_give_one_line(tmp_path: Path) -> None:
    np.savez(tmp_path / "pneumoniamnist.npz", **{"train\n_images": np.zeros(1)})
    loads_or_one_line(lambda: load("medmnist", "train", root=str(tmp_path), flag="pneumoniamnist"))


CSV = b'file,label,split\r\na.png,normal,train\r\n"b,1.png",lesion,test\r\nc.png,normal,\r\n'


@BUDGET
@given(blob=damaged(CSV))
@example(blob=b'"fi\nle",label\r\na,b\r\n')  # a quoted column name holding a newline
def test_any_csv_bytes_load_or_give_one_line(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    path = write(tmp_path_factory, "labels.csv", blob)
    loads_or_one_line(lambda: read_csv_rows(path, ["file", "label"], ["split"]))


def _image(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@BUDGET
@given(data=st.data(), fmt=st.sampled_from(["PNG", "JPEG"]), channels=st.sampled_from([1, 3]))
def test_any_png_or_jpeg_bytes_load_or_give_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, fmt: str, channels: int
) -> None:
    path = write(tmp_path_factory, f"x.{fmt.lower()}", data.draw(damaged(_image(fmt))))
    loads_or_one_line(lambda: read_image(path, size=(8, 8), channels=channels))


def _dicom() -> bytes:
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).read_bytes()  # type: ignore[arg-type]


@BUDGET
@given(data=st.data())
def test_any_dicom_bytes_load_or_give_one_line(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    from medrobust.data.medio_read import read_dicom

    path = write(tmp_path_factory, "ct.dcm", data.draw(damaged(_dicom())))
    loads_or_one_line(lambda: read_dicom(path))


def _nifti() -> bytes:
    nib = pytest.importorskip("nibabel")
    image = nib.Nifti1Image(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6), np.eye(4))
    return image.to_bytes()  # type: ignore[no-any-return]


@BUDGET
@given(data=st.data())
def test_any_nifti_bytes_load_or_give_one_line(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    from medrobust.data.medio_read import read_nifti

    path = write(tmp_path_factory, "volume.nii", data.draw(damaged(_nifti())))
    loads_or_one_line(lambda: read_nifti(path))
