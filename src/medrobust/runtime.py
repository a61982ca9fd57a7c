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

__all__ = ["eval_mode", "fork_generators", "model_device", "model_mode"]


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
