"""Safe checkpoints: everything loads with ``weights_only=True``; a checkpoint that would run code is refused.

A planted checkpoint whose unpickling would create a file is opened through every door a user has (``evaluate``,
``train --init``, ``load_model``, AMAT's ``clean_run``): each gives exit 2 / :class:`DataError` with one line, and
the file is never created.
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import medrobust
from conftest import blobs
from medrobust import models
from medrobust.cli import main
from medrobust.config import OptimConfig
from medrobust.errors import DataError
from medrobust.methods import METHODS
from medrobust.training import checkpoint as ckpt
from medrobust.training.loop import fit
from medrobust.training.optim import build_optimizer, build_scheduler

TINY_DATA = "data.options={size: 32, n: 48}"


class _Shell:
    """Unpickling this runs ``touch marker`` through the shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (os.system, (f"touch '{self.marker}'",))


class _Open:
    """Unpickling this creates ``marker`` with the builtin ``open``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (open, (str(self.marker), "w"))


def plant(folder: Path, payload: type, container: str = "zip") -> Path:
    """A run folder whose checkpoint.pt would create ``folder/pwned`` when unpickled; returns the marker path."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "pwned"
    state = {"format": "medrobust.checkpoint/1", "model": payload(marker), "epoch": 1}
    path = folder / ckpt.CHECKPOINT
    if container == "zip":
        torch.save(state, path)
    elif container == "legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(state))
    return marker


def one_line_error(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err and "refused unopened" in err


@pytest.mark.parametrize("container", ["zip", "legacy", "raw"])
@pytest.mark.parametrize("payload", [_Shell, _Open])
def test_load_model_refuses_a_planted_checkpoint(tmp_path: Path, payload: type, container: str) -> None:
    marker = plant(tmp_path / "run", payload, container)
    with pytest.raises(DataError, match="refused unopened") as info:
        medrobust.load_model(tmp_path / "run")
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="refused unopened"):
        medrobust.load_model(tmp_path / "run" / ckpt.CHECKPOINT)
    assert not marker.exists()


def test_evaluate_refuses_a_planted_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = plant(tmp_path / "run", _Shell)
    assert main(["evaluate", str(tmp_path / "run"), "--no-progress"]) == 2
    assert one_line_error(capsys.readouterr().err)
    assert not marker.exists()


@pytest.mark.parametrize(
    "option",
    ["train.init={run}", "method.options={{predicate: loss, clean_run: '{run}'}}"],
    ids=["init", "amat-clean-run"],
)
def test_train_refuses_a_planted_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str) -> None:
    marker = plant(tmp_path / "evil", _Shell)
    method = ["--method", "amat"] if "clean_run" in option else []
    args = ["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--out", str(tmp_path / "r"), *method]
    args += ["--set", TINY_DATA, "--set", option.format(run=tmp_path / "evil"), "--epochs", "1", "--no-progress"]
    assert main(args) == 2
    assert one_line_error(capsys.readouterr().err)
    assert not marker.exists()


def _tiny_fit(run_dir: Path, method: str, epochs: int, resume: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
    cfg = OptimConfig(name="sgd", lr=0.05, schedule="multistep", milestones=[1], gamma=0.5)
    opt = build_optimizer(model.parameters(), cfg)
    train = blobs(16)
    fit(
        model,
        METHODS.create(method),
        train,
        None,
        task=train.task(),
        optimizer=opt,
        scheduler=build_scheduler(opt, cfg, epochs),
        epochs=epochs,
        batch_size=8,
        run_dir=run_dir,
        resume=resume,
        seed=5,
        progress=False,
    )
    return model


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_checkpoint_loads_as_weights_only(tmp_path: Path, method: str) -> None:
    _tiny_fit(tmp_path, method, 1)
    path = tmp_path / ckpt.CHECKPOINT
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    state = torch.load(path, weights_only=True)  # strict: no allow-list
    fresh = METHODS.create(method)
    fresh.setup(models.create("small_cnn", in_channels=1, num_outputs=1, width=4), 16, blobs(16).task())
    fresh.load_state_dict(state["method"])
    assert fresh.state_dict().keys() == state["method"].keys()


def test_run_records_load_as_weights_only(tmp_path: Path) -> None:
    """config, dataset and task records, optimizer and scheduler states of a CLI run: no pickled objects."""
    args = ["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--out", str(tmp_path / "r"), "--no-progress"]
    assert (
        main(
            [
                *args,
                "--set",
                TINY_DATA,
                "--epochs",
                "1",
                "--set",
                "optim.schedule=multistep",
                "--set",
                "optim.milestones=[1]",
            ]
        )
        == 0
    )
    state = torch.load(tmp_path / "r" / ckpt.CHECKPOINT, weights_only=True)
    assert {"config", "dataset", "task", "optimizer", "scheduler", "rng", "history"} <= state.keys()


def test_save_refuses_state_that_would_not_load_safely(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="numpy"):
        ckpt.save_checkpoint(tmp_path / "c.pt", {"model": {}, "method": {"x": np.zeros(3)}})
    assert not (tmp_path / "c.pt").exists()


def test_rng_states_round_trip_through_a_file(tmp_path: Path) -> None:
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's state
    np.random.standard_normal()  # and in NumPy's legacy state
    gen = torch.Generator().manual_seed(7)
    ckpt.save_checkpoint(tmp_path / "c.pt", {"model": {}, "rng": ckpt.rng_state({"g": gen})})
    want = (
        torch.rand(3),
        np.random.standard_normal(3),
        random.gauss(0, 1),
        random.random(),
        torch.rand(2, generator=gen),
    )
    gen2 = torch.Generator()
    ckpt.restore_rng_state(ckpt.load_checkpoint(tmp_path / "c.pt")["rng"], {"g": gen2})
    got = (
        torch.rand(3),
        np.random.standard_normal(3),
        random.gauss(0, 1),
        random.random(),
        torch.rand(2, generator=gen2),
    )
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    assert want[2:4] == got[2:4] and torch.equal(want[4], got[4])


def _first_format(path: Path) -> None:
    """Rewrite ``path`` as the first checkpoint format wrote it: NumPy's and Python's RNG states as tuples."""
    state = torch.load(path, weights_only=True)
    n, p = state["rng"]["numpy"], state["rng"]["python"]
    key = n["key"].numpy().astype(np.uint32)
    state["rng"]["numpy"] = (n["kind"], key, n["pos"], n["has_gauss"], n["cached"])
    state["rng"]["python"] = (p["version"], tuple(p["internal"].tolist()), p["gauss_next"])
    torch.save(state, path)
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(path)


def test_first_format_checkpoint_still_resumes_bit_exactly(tmp_path: Path) -> None:
    full = _tiny_fit(tmp_path / "a", "ima", 3)
    _tiny_fit(tmp_path / "b", "ima", 1)
    _first_format(tmp_path / "b" / ckpt.CHECKPOINT)
    resumed = _tiny_fit(tmp_path / "b", "ima", 3, resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "b" / ckpt.CHECKPOINT) == []
