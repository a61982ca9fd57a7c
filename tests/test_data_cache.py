"""The on-disk dataset cache (``medrobust cache``, ``--dataset cache``): rows read per batch, equal data, bounded
memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import blobs
from medrobust import data, models
from medrobust.cli import main as cli
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.cache import CachedDataset, write_cache, write_splits
from medrobust.data.npy_rows import NpyRows
from medrobust.errors import ConfigError, DataError
from medrobust.evaluation.runner import evaluate
from medrobust.evaluation.threats import ThreatSpec
from medrobust.methods import METHODS
from medrobust.training.loop import fit

TESTS = Path(__file__).parent
PHANTOM = {"size": 32, "n": 48}


@pytest.fixture
def phantom_cache(tmp_path: Path) -> Path:
    out = tmp_path / "phantom"
    write_cache("phantom-ct", out, options=PHANTOM)
    return out


def test_npy_rows_index_like_the_array(tmp_path: Path) -> None:
    array = np.arange(10 * 2 * 3, dtype=np.int16).reshape(10, 2, 3)
    np.save(tmp_path / "a.npy", array)
    rows = NpyRows(tmp_path / "a.npy")
    assert rows.shape == (10, 2, 3) and rows.dtype == torch.int16 and len(rows) == 10 and rows.numel() == 60
    assert np.array_equal(rows[3].numpy(), array[3]) and np.array_equal(rows[-1].numpy(), array[-1])
    assert np.array_equal(rows[2:7].numpy(), array[2:7]) and np.array_equal(rows[::3].numpy(), array[::3])
    assert np.array_equal(rows[8:100].numpy(), array[8:]) and rows[5:2].shape == (0, 2, 3)
    index = torch.tensor([9, 0, 4, 4, -2])
    assert np.array_equal(rows[index].numpy(), array[index.numpy()])
    assert rows[torch.tensor([], dtype=torch.long)].shape == (0, 2, 3)
    with pytest.raises(IndexError):
        rows[torch.tensor([10])]
    with pytest.raises(TypeError):
        rows[torch.zeros(2, 2, dtype=torch.long)]


def test_npy_rows_refuse_what_they_cannot_read(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((3, 4))))
    (tmp_path / "text.npy").write_text("not an array")
    for name in ("f.npy", "text.npy"):
        with pytest.raises(DataError):
            NpyRows(tmp_path / name)
    np.save(tmp_path / "cut.npy", np.ones((4, 100)))
    with (tmp_path / "cut.npy").open("r+b") as f:
        f.truncate(os.path.getsize(tmp_path / "cut.npy") - 100)
    with pytest.raises(DataError, match="truncated"):
        NpyRows(tmp_path / "cut.npy")[3]


@pytest.mark.parametrize("split", ["train", "test"])
def test_cache_holds_what_the_loader_gave(phantom_cache: Path, split: str) -> None:
    loaded = data.load("phantom-ct", split, **PHANTOM)
    cached = data.load("cache", split, root=str(phantom_cache))
    assert isinstance(cached, CachedDataset) and isinstance(cached.images, NpyRows)
    assert torch.equal(cached.images[:], loaded.images) and torch.equal(cached.targets, loaded.targets)
    assert cached.extras.keys() == loaded.extras.keys()
    assert all(np.array_equal(cached.extras[k], loaded.extras[k], equal_nan=True) for k in loaded.extras)
    assert cached.info.extra.pop("cache") == str(phantom_cache)
    assert json.dumps(cached.info.to_dict()) == json.dumps(loaded.info.to_dict())  # equal up to tuples → lists
    idx = torch.tensor([5, 1, 40])
    assert all(torch.equal(a, b) for a, b in zip(cached.batch(idx), loaded.batch(idx)))


def test_training_on_the_cache_gives_the_in_memory_weights(phantom_cache: Path) -> None:
    weights = []
    for train in (data.load("phantom-ct", "train", **PHANTOM), data.load("cache", "train", root=str(phantom_cache))):
        torch.manual_seed(0)
        model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
        fit(model, METHODS.create("pgd_at", eps=0.02, steps=2), train, None, task=train.task(),
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=16, progress=False)  # fmt: skip
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_an_interrupted_conversion_leaves_no_folder(tmp_path: Path) -> None:
    def splits() -> object:
        yield data.load("phantom-ct", "train", **PHANTOM)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_splits(tmp_path / "c", {"dataset": "phantom-ct"}, splits())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_cache_and_refuses_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    args = ["cache", "--dataset", "phantom-ct", "--set", "data.options={size: 32, n: 16}", "--out", str(out)]
    assert cli([*args, "--splits", "train", "val"]) == 0
    assert "--dataset cache --data-root" in capsys.readouterr().out
    assert sorted(json.loads((out / "manifest.json").read_text())["splits"]) == ["train", "val"]
    assert cli(args) == 2  # the folder exists
    with pytest.raises(DataError, match="no 'test' split"):
        data.load("cache", "test", root=str(out))
    with pytest.raises(ConfigError, match="--data-root"):
        data.load("cache", "train")
    assert cli(["cache", "--dataset", "cache", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("medrobust cache: error:") for line in err)


def big_cache(folder: Path, n: int = 2048, side: int = 128) -> int:
    """A ``(n, 3, side, side)`` uint8 training split (96 MiB by default) whose class shows in the top half."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
    x[y == 1, :, : side // 2] //= 2
    info = DatasetInfo("synthetic", "binary", 3, (side, side), 2, ("a", "b"), "train")
    write_splits(folder, {"dataset": "synthetic"}, [ArrayDataset(x, y, info)])
    return x.nbytes


def test_a_split_four_times_the_memory_cap_trains_from_the_cache(tmp_path: Path) -> None:
    nbytes = big_cache(tmp_path / "big")
    cap_mib = nbytes / 2**20 / 4
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    procs = {
        mode: subprocess.Popen(
            [sys.executable, str(TESTS / "cache_memory_worker.py"), str(tmp_path / "big"), mode, str(cap_mib)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("cache", "memory")
    }
    result = {mode: json.loads(p.communicate(timeout=300)[0]) for mode, p in procs.items()}
    cache, memory = result["cache"], result["memory"]
    assert "error" not in cache and 0 < cache["loss"] < 0.69  # learnt something from every batch read from disk
    assert cache["peak_mib"] - cache["warm_peak_mib"] < cap_mib  # resident set held under the cap too
    assert memory["error"].startswith("MemoryError")  # the in-memory path cannot load the split under that cap


def test_evaluating_from_the_cache_gives_the_in_memory_rows(tmp_path: Path) -> None:
    test = blobs(30, size=8, split="test")
    write_splits(tmp_path / "blobs", {"dataset": "blobs"}, [test])
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4, norm="none")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):  # full-batch steps: a model that is right on most samples
        opt.zero_grad()
        test.task().loss(model(test.images[:]), test.targets).mean().backward()
        opt.step()
    model.eval()
    threats = [ThreatSpec.attack("pgd", norm="l2", eps=[0.0, 0.5], steps=3), ThreatSpec.noise("gaussian", [0.01])]
    rows = []
    for ds in (test, data.load("cache", "test", root=str(tmp_path / "blobs"))):
        rows.append(evaluate(model, ds, ds.task(), threats, seed=0, batch_size=7, progress=False).rows)
    accuracy = [r["value"] for r in rows[0] if r["metric"] == "accuracy"]
    assert accuracy[0] > 0.8 and min(accuracy) < accuracy[0]  # a model that learnt, and an attack that hurts it
    assert rows[0] == rows[1]
