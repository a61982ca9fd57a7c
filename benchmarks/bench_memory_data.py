"""Peak memory of one training epoch on a split read whole into memory vs. from the on-disk cache.

A synthetic ``(N, 3, side, side)`` uint8 training split of ``--mib`` MiB is written as a cache
(:func:`medrobust.data.cache.write_splits`); then ``tests/cache_memory_worker.py`` trains one epoch on it in a fresh
process, once reading the images per batch from the cache and once after loading them whole (the in-memory
default), without a memory cap. Reported per path: the peak resident set after a warm-up epoch on 64 samples
(libraries, thread pools), the peak at the end (``VmHWM``), their difference, and the epoch's seconds.

Usage::

    python benchmarks/bench_memory_data.py                  # a 512 MiB split of 128² RGB images
    python benchmarks/bench_memory_data.py --mib 2048 --side 224
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.data.cache import write_splits
from medrobust.reporting.tables import Table

WORKER = Path(__file__).resolve().parent.parent / "tests" / "cache_memory_worker.py"


def synthetic_cache(folder: Path, mib: float, side: int) -> int:
    """Write a synthetic binary split of about ``mib`` MiB (class 1 darker in the top half); its sample count."""
    n = max(64, int(mib * 2**20 / (3 * side * side)))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
    x[y == 1, :, : side // 2] //= 2
    info = DatasetInfo("synthetic", "binary", 3, (side, side), 2, ("a", "b"), "train")
    write_splits(folder, {"dataset": "synthetic"}, [ArrayDataset(x, y, info)])
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=float, default=512, help="size of the training split's images (MiB)")
    p.add_argument("--side", type=int, default=128, help="image side (pixels)")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cache"
        n = synthetic_cache(folder, args.mib, args.side)
        rows = []
        for mode in ("memory", "cache"):
            cmd = [sys.executable, str(WORKER), str(folder), mode, "0"]
            r = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
            grown = r["peak_mib"] - r["warm_peak_mib"]
            rows.append([mode, r["warm_peak_mib"], r["peak_mib"], grown, r["epoch_seconds"]])
    print(f"one epoch over {n} images of 3×{args.side}² uint8 ({args.mib:.0f} MiB), batch 32, 1 thread")
    print(Table.of(["images", "peak RSS after warm-up (MiB)", "peak RSS (MiB)", "growth (MiB)", "epoch s"],
                   rows).to_markdown())  # fmt: skip


if __name__ == "__main__":
    main()
