"""Data-parallel training and evaluation with ``torch.distributed`` (launched by ``torchrun``; see docs/distributed.md).

A process started by ``torchrun`` finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment;
:func:`distributed` joins the process group (NCCL on CUDA, gloo on the CPU) and leaves it afterwards. Without
those variables everything here is the single-process identity, so the same code runs in one process.

Each global batch of the epoch's seeded permutation is split into contiguous per-rank slices
(:func:`shard`): no index is repeated or padded, unlike ``DistributedSampler``, so per-sample state such as IMA's
margins is updated exactly once per epoch. Gradients are summed across ranks with each rank's weight
``n_rank / n_global`` (:func:`sync_gradients`), which reproduces the gradient of the whole global batch's mean loss
even when the slices differ in size.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from medrobust.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes files and shows progress (rank 0)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        """Whether there is more than one process."""
        return self.size > 1


def world() -> World:
    """The process group's :class:`World` once joined (:func:`distributed`), else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), launched().local_rank)
    return World()


def launched() -> World:
    """The :class:`World` ``torchrun`` launched this process into (its ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``),
    known before the group is joined; a single process without them."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers; launch with torchrun") from None
    return World(rank, size, local)


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[torch.device]:
    """Join the process group ``torchrun`` set up (if any) for the block; yields this rank's device.

    On CUDA each process takes GPU ``LOCAL_RANK`` and NCCL; on the CPU, gloo. A group joined here is left
    (destroyed) at the end of the block; one joined already by the caller is left alone.
    """
    w = launched()
    if not w.parallel or (dist.is_available() and dist.is_initialized()):
        yield _rank_device(device, w)
        return
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run in one process (without torchrun)")
    device = _rank_device(device, w)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def _rank_device(device: torch.device, w: World) -> torch.device:
    if device.type == "cuda" and device.index is None and w.parallel:
        return torch.device("cuda", w.local_rank)
    return device


def main_only(context: contextlib.AbstractContextManager[T]) -> contextlib.AbstractContextManager[T | None]:
    """``context`` on rank 0 (e.g. the run-folder lock), nothing on the other ranks."""
    return context if launched().main else contextlib.nullcontext()


def shard(index: Tensor, w: World | None = None) -> Tensor:
    """This rank's contiguous slice of a global batch's indices (sizes differ by at most one; none repeated).

    Shape:
        index: ``(B,)``; returns ``(B_rank,)`` with ``sum(B_rank) = B``.
    """
    w = w or world()
    return torch.tensor_split(index, w.size)[w.rank] if w.parallel else index


def broadcast_module(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (a no-op in one process)."""
    if not world().parallel:
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def sync_gradients(params: Iterable[nn.Parameter], local_n: int, global_n: int) -> None:
    """Replace each gradient by the global batch's: ``Σ_rank (n_rank / n_global) · grad_rank``.

    Each rank's loss is a mean over its ``local_n`` samples; a rank with no samples contributes zeros. All ranks
    must call this with their parameters in the same order.
    """
    if not world().parallel:
        return
    params = [p for p in params if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads]) * (local_n / max(global_n, 1))
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def merge_owned(value: Tensor, owned: Tensor) -> Tensor:
    """Every rank's entries of a per-sample table, merged: entry ``i`` from the rank that owns it.

    Each index must be owned by at most one rank; unowned entries keep this rank's value (which must then be
    equal on all ranks, as for entries no rank touched this epoch).

    Shape:
        value: ``(N, ...)``; owned: bool ``(N,)``; returns ``(N, ...)``.
    """
    if not world().parallel:
        return value
    mask = owned.reshape(-1, *([1] * (value.dim() - 1)))
    ours = torch.where(mask, value, torch.zeros_like(value)).double()
    any_owned = owned.to(torch.int32)
    dist.all_reduce(ours)
    dist.all_reduce(any_owned)
    if int(any_owned.max()) > 1:
        raise RuntimeError("a per-sample entry was updated by two ranks in one epoch; the sampler repeated an index")
    merged = torch.where(any_owned.bool().reshape(mask.shape), ours.to(value.dtype), value)
    return merged.to(value.dtype)


@runtime_checkable
class PerSampleState(Protocol):
    """Method state indexed by dataset index (e.g. IMA's :class:`~medrobust.methods.margins.Margins`)."""

    def merge_ranks(self) -> None:
        """Merge this epoch's per-rank updates so every rank holds the same full table."""


def merge_method_state(method: object) -> None:
    """Call ``merge_ranks`` on every :class:`PerSampleState` attribute of ``method`` (under ``torchrun``; before
    the method's epoch-end update, so every rank updates the same full table)."""
    if world().parallel:
        for value in vars(method).values():
            if isinstance(value, PerSampleState):
                value.merge_ranks()


def gather_objects(obj: T) -> list[T]:
    """``obj`` of every rank, in rank order (``[obj]`` in one process)."""
    w = world()
    if not w.parallel:
        return [obj]
    out: list[Any] = [None] * w.size
    dist.all_gather_object(out, obj)
    return out
