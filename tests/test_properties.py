"""Property-based tests (Hypothesis): any bytes given as a checkpoint or a safetensors export give either a valid
result or a one-line :class:`DataError`, and never another exception, a traceback or code run from the file.

The example budget is fixed and the search is derandomised, so CI stays within seconds and gives the same verdict
on every run.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medrobust.errors import DataError
from medrobust.training.checkpoint import load_checkpoint, save_checkpoint
from medrobust.training.tensorfile import load_tensors, save_tensors

BUDGET = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def _valid_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 1, "rng": {"k": [1, 2]}}, buffer)
    return buffer.getvalue()


def _valid_tensors(tmp: Path) -> bytes:
    save_tensors(tmp / "ok.safetensors", {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)},
                 {"format": "x"})  # fmt: skip
    return (tmp / "ok.safetensors").read_bytes()


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """``valid`` truncated, with a byte changed, or with bytes spliced in; or arbitrary bytes."""
    cut = st.integers(0, len(valid)).map(lambda n: valid[:n])
    flip = st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
        lambda p: valid[: p[0]] + bytes([p[1]]) + valid[p[0] + 1 :]
    )
    splice = st.tuples(st.integers(0, len(valid)), st.binary(max_size=64)).map(
        lambda p: valid[: p[0]] + p[1] + valid[p[0] :]
    )
    return st.one_of(cut, flip, splice, st.binary(max_size=512))


def _loads_or_one_line_error(load: object, path: Path) -> None:
    try:
        load(path)  # type: ignore[operator]
    except DataError as e:
        assert "\n" not in str(e) and str(e)


@BUDGET
@given(blob=damaged(_valid_checkpoint()))
def test_any_checkpoint_bytes_load_or_give_one_line(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("ck") / "checkpoint.pt"
    path.write_bytes(blob)
    _loads_or_one_line_error(load_checkpoint, path)


@BUDGET
@given(data=st.data())
def test_any_safetensors_bytes_load_or_give_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("st")
    blob = data.draw(damaged(_valid_tensors(folder)))
    (folder / "x.safetensors").write_bytes(blob)
    _loads_or_one_line_error(load_tensors, folder / "x.safetensors")


@BUDGET
@given(
    values=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.integers(-(2**62), 2**62),
            st.floats(allow_nan=False),
            st.text(max_size=16),
            st.none(),
            st.lists(st.integers(0, 9), max_size=4),
        ),
        max_size=6,
    )
)
def test_plain_values_round_trip_through_a_checkpoint(tmp_path_factory: pytest.TempPathFactory, values: dict) -> None:
    path = tmp_path_factory.mktemp("rt") / "checkpoint.pt"
    save_checkpoint(path, {"model": {}, "method": values})
    assert load_checkpoint(path)["method"] == values
