"""Runtime helpers used everywhere: one way to switch train/eval, to find a model's device, to set torch's CPU
threads, and to record what same-seed numbers depend on beyond package versions (:func:`provenance`).

:func:`model_mode` saves every submodule's own ``training`` flag and restores it on exit (also on exceptions), so
a model whose submodules are deliberately in different modes (a frozen batch-norm in a training model) comes back
exactly as it was; ``model.train(flag)`` would reset them all.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train()
    >>> _ = net[1].eval()  # a frozen batch-norm inside a training model
    >>> with eval_mode(net):
    ...     net.training, net[1].training
    (False, False)
    >>> net.training, net[1].training
    (True, False)
    >>> model_device(net)
    device(type='cpu')
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medrobust.errors import ConfigError

__all__ = ["eval_mode", "fork_generators", "model_device", "model_mode", "num_threads", "provenance"]


@contextmanager
def model_mode(model: nn.Module, train: bool) -> Iterator[nn.Module]:
    """Put ``model`` in train (``True``) or eval mode, then restore every submodule's own flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def eval_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """``model_mode(model, False)``: eval mode inside the block, every submodule's flag restored after it."""
    return model_mode(model, False)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); CPU for a model with neither."""
    first: torch.Tensor | None = next(iter(model.parameters()), None)
    if first is None:
        first = next(iter(model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def fork_generators(
    generator: torch.Generator | None, count: int, device: torch.device | str = "cpu"
) -> list[torch.Generator | None]:
    """``count`` independent generators seeded from draws of ``generator`` (``None`` stays ``None``: global RNG).

    An ε sweep gives each ε one, and AutoAttack each member, so a consumer's draws do not depend on how many
    numbers the others drew.

    Examples:
        >>> a = fork_generators(torch.Generator().manual_seed(0), 2)
        >>> b = fork_generators(torch.Generator().manual_seed(0), 2)
        >>> [torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=h)) for g, h in zip(a, b)]
        [True, True]
    """
    if generator is None:
        return [None] * count
    seeds = torch.randint(0, 2**62, (count,), generator=generator, device=generator.device).tolist()
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


@contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Run torch with ``threads`` intra-op CPU threads inside the block, then restore the previous count.

    ``None`` or 0 leaves torch's setting (by default one thread per core). On a machine whose cores are shared,
    one thread is often several times faster; the count can also change results in the last bits, since a
    reduction split over more threads adds in another order (see :func:`provenance`).
    """
    if threads is not None and threads < 0:
        raise ConfigError(f"threads must be ≥ 0 (0: torch's default of one per core), got {threads}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def provenance() -> dict[str, Any]:
    """What a run's numbers depend on besides the seed and the package versions, for its records.

    Same seed, same numbers holds for the same versions (medrobust, torch, NumPy, Python), the same device, the
    same number of torch CPU ``threads``, and the same CPU kernels: torch picks its vectorised kernels by the
    CPU's ``cpu_capability`` (AVX2, AVX512, …) and MKL picks its code paths by the ``cpu`` model.
    """
    return {
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": _blas(),
        "cpu": _cpu_model(),
        "machine": platform.machine(),
    }


@lru_cache(maxsize=1)
def _blas() -> str:
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


@lru_cache(maxsize=1)
def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or "unknown"
