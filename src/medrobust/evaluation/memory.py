"""A memory budget for evaluation (``evaluate --max-memory 2G``): the model sees at most ``chunk`` samples at a
time, and with gradients each chunk is checkpointed, so an attack's backward pass recomputes one chunk's
activations at a time instead of keeping the whole batch's.

The chunk size comes from a probe: the bytes autograd saves for the backward pass of one and of two samples
(counted with :func:`torch.autograd.graph.saved_tensors_hooks`, each storage once) give the activation bytes per
sample and the fixed part (weights saved by the layers). The budget must also hold the model's parameters and the
input-sized tensors an attack keeps for the whole batch (:data:`BATCH_COPIES` per sample: the clean and
adversarial inputs, the perturbation, its gradient, the best point so far, …). Kernels' transient workspaces
(conv3d on the CPU unfolds one layer's input for the samples of a chunk) are not counted.

Batches, and so every random draw, stay as ``--batch-size`` makes them: only the model's forward and backward
passes are split. The numbers equal those of an unchunked run up to float rounding: convolution kernels may sum in
another order for another number of samples (1e-10 in the input gradients of a small 3D CNN), and an attack's sign
step can turn that into another adversarial point, so rows are usually, not always, identical.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from medrobust.errors import ConfigError

__all__ = ["BATCH_COPIES", "ChunkedModel", "MemoryPlan", "activation_bytes", "format_size", "parse_size", "plan"]

BATCH_COPIES = 8
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of a size such as ``"2G"``, ``"512M"``, ``"1.5GiB"`` or ``"1000000"`` (powers of 1024).

    Raises:
        ConfigError: not a positive size.
    """
    match = _SIZE.fullmatch(text)
    value = int(float(match.group(1)) * _UNITS[match.group(2).upper()]) if match else 0
    if value < 1:
        raise ConfigError(f"--max-memory {text!r} is not a size; write e.g. 2G, 512M or 1.5GiB")
    return value


def format_size(n: int) -> str:
    """``n`` bytes in MiB or GiB, e.g. ``"1.50 GiB"``."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def activation_bytes(model: nn.Module, x: Tensor) -> int:
    """Bytes of the distinct storages autograd saves for the backward pass of ``model(x)`` (input gradient on).

    Shape:
        ``x (B, C, *spatial)``.
    """
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x.detach().clone().requires_grad_(True))
    del out
    return sum(saved.values())


@dataclass(frozen=True)
class MemoryPlan:
    """How a budget is spent: ``fixed`` bytes whatever the chunk, ``per_sample`` bytes of activations per sample of
    a chunk, and the resulting ``chunk`` (samples per forward/backward pass)."""

    budget: int
    fixed: int
    per_sample: int
    chunk: int

    def to_dict(self) -> dict[str, int]:
        """JSON-friendly record (in ``results.json`` under ``config.memory``)."""
        return {"budget": self.budget, "fixed": self.fixed, "per_sample": self.per_sample, "chunk": self.chunk}


def plan(model: nn.Module, sample: Tensor, batch_size: int, budget: int) -> MemoryPlan:
    """The largest chunk whose forward and backward pass fits ``budget`` beside the fixed costs.

    Args:
        model: in eval mode, on the device of ``sample``.
        sample: one input ``(1, C, *spatial)``.
        batch_size: the largest evaluation batch.
        budget: bytes.

    Raises:
        ConfigError: not even one sample fits.
    """
    one = activation_bytes(model, sample)
    per_sample = max(activation_bytes(model, sample.repeat(2, *[1] * (sample.dim() - 1))) - one, 1)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    inputs = BATCH_COPIES * batch_size * sample.numel() * sample.element_size()
    fixed = max(one - per_sample, 0) + weights + inputs
    chunk = min(batch_size, (budget - fixed) // per_sample)
    if chunk < 1:
        raise ConfigError(
            f"--max-memory {format_size(budget)} is too small: the weights and a batch of {batch_size} inputs take "
            f"{format_size(fixed)} and one sample's forward and backward pass {format_size(per_sample)}; "
            "raise it or lower --batch-size"
        )
    return MemoryPlan(budget, fixed, per_sample, int(chunk))


class ChunkedModel(nn.Module):
    """``model`` applied to at most ``chunk`` samples at a time; with gradients enabled each chunk is checkpointed
    (its activations are recomputed in the backward pass, one chunk at a time).

    Shape:
        input ``(N, C, *spatial)`` → ``model``'s output ``(N, ...)``.
    """

    def __init__(self, model: nn.Module, chunk: int) -> None:
        super().__init__()
        self.model, self.chunk = model, chunk

    def forward(self, x: Tensor) -> Tensor:
        if len(x) <= self.chunk:
            return self.model(x)
        parts: Sequence[Tensor] = x.split(self.chunk)
        if torch.is_grad_enabled():
            return torch.cat([checkpoint(self.model, p, use_reentrant=False) for p in parts])
        return torch.cat([self.model(p) for p in parts])
