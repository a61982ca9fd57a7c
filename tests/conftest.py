"""Shared fixtures: tiny in-memory datasets and an isolated phantom cache."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from medrobust.data.base import ArrayDataset, DatasetInfo


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dataset caches go to a temporary folder (never ~/.cache); one torch thread (tiny tensors run faster so)."""
    monkeypatch.setenv("MEDROBUST_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.set_num_threads(1)


def blobs(n: int = 64, size: int = 8, seed: int = 0, split: str = "train") -> ArrayDataset:
    """A learnable binary toy dataset: class 1 has a bright square in the centre."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.uniform(0.0, 0.4, size=(n, 1, size, size)).astype(np.float32)
    c = size // 2
    x[y == 1, :, c - 2 : c + 2, c - 2 : c + 2] += 0.5
    info = DatasetInfo("blobs", "binary", 1, (size, size), 2, ("off", "on"), split)
    return ArrayDataset(np.clip(x, 0, 1), y.astype(np.int64), info)


@pytest.fixture(scope="session")
def evaluated_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Tiny standard and IMA runs, trained and evaluated once per session (report, card and browser tests)."""
    from report_runs import evaluate, npz_root, train

    base = tmp_path_factory.mktemp("evaluated-runs")
    root = npz_root(base / "data")
    return {m: evaluate(train(root, base / m, m)) for m in ("standard", "ima")}
