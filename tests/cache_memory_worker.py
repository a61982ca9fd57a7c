"""Trains one epoch on a cache folder in a fresh process held to a memory cap; prints its memory as JSON
(tests/test_data_cache.py, benchmarks/bench_memory_data.py).

Usage: ``python cache_memory_worker.py FOLDER {cache,memory} CAP_MIB``. ``cache`` reads the images per batch from
disk (:class:`~medrobust.data.cache.CachedDataset`); ``memory`` first reads the same files whole into an
:class:`~medrobust.data.base.ArrayDataset` (the default path for small data). A warm-up epoch on 64 in-memory
samples first brings in everything a training epoch allocates once (libraries, thread pools, the allocator's
arenas); then the address space is capped at its size then plus ``CAP_MIB`` (``RLIMIT_AS``, as
``prlimit --as``; 0: no cap), and the measured epoch runs. Reported: the peak resident set after the warm-up and at the
end (``VmHWM``), and the epoch's loss, or the error that stopped it. The model average-pools each image to
8×8 first, so the epoch costs little beyond reading the data.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medrobust.data.base import ArrayDataset
from medrobust.data.cache import CachedDataset
from medrobust.methods import METHODS
from medrobust.training.loop import fit


def vm_mib(field: str) -> float:
    """A ``/proc/self/status`` memory field of this process (``VmSize``, ``VmRSS``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss_mib() -> float:
    """The largest resident set this program has had (MiB): ``VmHWM``, which, unlike ``ru_maxrss``, does not
    start from the peak of the process that forked it."""
    return vm_mib("VmHWM")


def epoch(model: nn.Module, train: ArrayDataset) -> float:
    """One epoch of standard training; its mean loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    method = METHODS.create("standard")
    history = fit(model, method, train, None, task=train.task(), optimizer=optimizer, epochs=1, batch_size=32,
                  progress=False)  # fmt: skip
    return float(history.last()["train_loss"])


def main(folder: Path, mode: str, cap_mib: float) -> dict[str, float | str]:
    torch.set_num_threads(1)
    cached = CachedDataset(folder, "train")
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(cached.images.shape[1] * 64, 1))
    epoch(model, ArrayDataset(cached.images[:64].numpy(), cached.targets[:64].numpy(), cached.info))
    report: dict[str, float | str] = {"warm_peak_mib": peak_rss_mib(), "cap_mib": cap_mib}
    start = time.perf_counter()
    if cap_mib > 0:
        cap = int((vm_mib("VmSize") + cap_mib) * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    try:
        train = cached
        if mode == "memory":
            train = ArrayDataset(np.load(folder / "train" / "images.npy"), cached.targets.numpy(), cached.info)
        report["loss"] = epoch(model, train)
    except MemoryError as e:
        report["error"] = f"MemoryError: {e}"
    report["peak_mib"] = peak_rss_mib()
    report["epoch_seconds"] = time.perf_counter() - start
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]))))
