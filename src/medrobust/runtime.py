"""Model mode and device helpers used everywhere: one way to switch train/eval, one way to find a model's device.

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

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

__all__ = ["eval_mode", "model_device", "model_mode"]


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
