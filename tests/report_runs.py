"""Tiny trained and evaluated runs for the report, card and tracking tests (MedMNIST-format npz, 28×28, binary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medrobust.cli import main

EVAL = ["--norm", "l2", "--eps", "0,0.5,2", "--steps", "3", "--noise", "gaussian:0.01,0.1", "--no-progress"]
IMA = "{e_max: 1.0, delta: 0.5, steps: 2, norm: l2}"


def npz_root(root: Path) -> Path:
    """Write a learnable binary ``pneumoniamnist.npz`` (bright square = class 1) into ``root``."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 48), ("val", 8), ("test", 24)):
        y = np.arange(n)[:, None] % 2
        x = rng.integers(0, 100, (n, 28, 28)).astype(np.uint8)
        x[y[:, 0] == 1, 10:18, 10:18] += 120
        arrays |= {f"{split}_images": x, f"{split}_labels": y}
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "pneumoniamnist.npz", **arrays)
    return root


def train(root: Path, out: Path, method: str = "standard", *extra: str) -> Path:
    """Train a 2-epoch small_cnn run on :func:`npz_root` data into ``out``; ``method="ima"`` uses :data:`IMA`."""
    args = ["train", "--dataset", "medmnist", "--set", "data.options.flag=pneumoniamnist", "--model", "small_cnn",
            "--epochs", "2", "--batch-size", "16", "--no-progress", "--data-root", str(root), "--out", str(out),
            "--method", method, *(["--set", f"method.options={IMA}"] if method == "ima" else []), *extra]  # fmt: skip
    assert main(args) == 0
    return out


def evaluate(run: Path) -> Path:
    """``medrobust evaluate`` with :data:`EVAL`; returns the run folder."""
    assert main(["evaluate", str(run), *EVAL]) == 0
    return run
