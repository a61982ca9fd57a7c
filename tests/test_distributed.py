"""Data-parallel training and evaluation under ``torchrun`` (2 gloo processes on the CPU) against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import ddp_worker
import medrobust
from conftest import blobs
from medrobust import models
from medrobust.distributed import World, launched, shard, world
from medrobust.errors import ConfigError
from medrobust.methods import METHODS
from medrobust.training.loop import sync_batchnorm

TESTS = Path(__file__).parent


def torchrun(mode: str, out: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TESTS / "ddp_worker.py"), mode, str(out)]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600).returncode


def rel_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    num = sum(float((a[k].double() - b[k].double()).norm() ** 2) for k in a) ** 0.5
    den = sum(float(a[k].double().norm() ** 2) for k in a) ** 0.5
    return num / den


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ddp")
    assert torchrun("equal", out) == 0
    return torch.load(out / "equal.pt", weights_only=False)


def test_shards_cover_each_index_once() -> None:
    idx = torch.randperm(11)
    parts = [shard(idx, World(r, 3)) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(11))
    assert torch.equal(torch.cat(parts), idx) and [len(p) for p in parts] == [4, 4, 3]
    assert shard(idx[:1], World(1, 2)).numel() == 0


@pytest.mark.parametrize("method", list(ddp_worker.OPTIONS))
def test_two_processes_train_the_weights_of_one(two_ranks: dict[str, Any], method: str) -> None:
    torch.set_num_threads(1)
    one = ddp_worker.train(method, 2, None)
    assert rel_diff(one["weights"], two_ranks[method]["weights"]) <= 1e-5
    if method == "ima":  # random starts drawn per sample (geometry.SampleDraws), whichever rank trains the sample
        # the same table up to the last bit of refined margins: boundary distances of weights equal up to rounding
        torch.testing.assert_close(one["method"]["margins"], two_ranks[method]["method"]["margins"], rtol=1e-6, atol=0)
        assert one["method"]["margins"].unique().numel() > 1  # the margins moved, differently per sample


def test_sharded_evaluation_equals_one_process(two_ranks: dict[str, Any]) -> None:
    single, sharded = ddp_worker.evaluation(), two_ranks["evaluation"]
    assert sharded["samples_forwarded"] < single["samples_forwarded"]  # rank 0 evaluated only its share
    one = single["rows"]
    accuracy = [r["value"] for r in one if r["metric"] == "accuracy"]
    assert accuracy[0] > 0.8 and min(accuracy) < accuracy[0]  # a trained model that the attack hurts
    assert len(one) == len(sharded["rows"]) > 0
    for a, b in zip(one, sharded["rows"]):
        assert (a["threat"], a["level"], a["metric"], a["n"]) == (b["threat"], b["level"], b["metric"], b["n"])
        assert a["value"] == pytest.approx(b["value"], abs=1e-9)


def test_killed_ddp_run_resumes_bit_identically(tmp_path: Path) -> None:
    full, broken = tmp_path / "full", tmp_path / "broken"
    full.mkdir(), broken.mkdir()
    assert torchrun("full", full) == 0
    assert torchrun("killed", broken) != 0  # died in epoch 3, after the epoch-2 checkpoint
    assert torch.load(broken / "run" / "checkpoint.pt", weights_only=False)["epoch"] == 2
    assert torchrun("resume", broken) == 0
    a, b = (torch.load(p, weights_only=False) for p in (full / "full.pt", broken / "resume.pt"))
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert torch.equal(a["method"]["margins"], b["method"]["margins"])


def test_torchrun_cli_trains_and_evaluates_like_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    data = ["--dataset", "phantom-ct", "--model", "small_cnn", "--set", "data.options={size: 28, n: 48}"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "medrobust"]
    run = tmp_path / "run"
    train = [*launch, "train", *data, "--method", "pgd_at", "--epochs", "1", "--batch-size", "16", "--out", str(run)]
    proc = subprocess.run([*train, "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("epoch   1/1") == 1  # rank 0 alone reports
    assert medrobust.load_run(run).history[0]["epoch"] == 1
    # one batch of 48 for two ranks: rank 1 idles (the worker's evaluation covers batches split across ranks)
    grid = ["evaluate", str(run), "--attack", "pgd", "--norm", "l2", "--eps", "0,0.5", "--steps", "2", "--no-progress"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    single = subprocess.run(
        [sys.executable, "-m", "medrobust", *grid, "--json", str(one)], env=env, capture_output=True
    )
    sharded = subprocess.run([*launch, *grid, "--json", str(two)], env=env, capture_output=True, timeout=600)
    assert single.returncode == sharded.returncode == 0
    rows = [json.loads(p.read_text())["rows"] for p in (one, two)]
    assert [(r["threat"], r["level"], r["metric"], r["value"]) for r in rows[0]] == [
        (r["threat"], r["level"], r["metric"], r["value"]) for r in rows[1]
    ]
    assert json.loads(two.read_text())["n"] == 48


def test_sync_batchnorm_is_refused_where_it_cannot_work() -> None:
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
    with pytest.raises(ConfigError, match="needs CUDA"):
        sync_batchnorm(model, METHODS.create("standard"), torch.device("cpu"))
    ima = METHODS.create("ima")
    ima.setup(model, 8, blobs(8).task())
    with pytest.raises(ConfigError, match="per-sample"):
        sync_batchnorm(model, ima, torch.device("cuda"))
    sync_batchnorm(model, METHODS.create("standard"), torch.device("cuda"))  # one process: nothing to do
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())


def test_world_comes_from_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert launched() == World(2, 4, 0) and not launched().main and launched().parallel
    assert world() == World()  # no process group joined: collectives are the single-process identity
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ConfigError, match="torchrun"):
        launched()
