"""Per-sample norm geometry shared by attacks and noise: ε handling, norms, steps, projection, random draws.

Every tensor is a batch ``(N, *)`` in [0, 1]; norms are taken per sample over ``x.flatten(1)``; ε is a float
or a ``(N,)`` tensor (one radius per sample). Projection onto the ε-ball ∩ [0, 1] follows Madry et al. (2018):
the L∞ case is the exact projection (clamp between ``max(x − ε, 0)`` and ``min(x + ε, 1)``); the L2 case
rescales the perturbation into the ball and then clamps to the box, which keeps the point inside both sets.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import torch
from torch import Tensor

from medrobust.errors import ConfigError, DataError

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = ("linf", "l2")


def check_norm(norm: str) -> None:
    """Raise :class:`ConfigError` unless ``norm`` is ``"linf"`` or ``"l2"``."""
    if norm not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; use 'linf' or 'l2'")


def check_images(x: Tensor) -> None:
    """Raise :class:`DataError` if ``x`` is not a finite float batch in [0, 1].

    Shape:
        - x: ``(N, *)``.
    """
    if not torch.is_floating_point(x) or x.ndim < 2:
        raise DataError(f"inputs must be a float batch of shape (N, C, ...); got {x.dtype} {tuple(x.shape)}")
    if x.numel() == 0:
        return
    if not bool(torch.isfinite(x).all()):
        raise DataError("inputs contain NaN or Inf; clean the data before attacking it")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        raise DataError(f"inputs must lie in [0, 1] (got min {low:.4g}, max {high:.4g}); scale images to [0, 1]")


def check_generator(generator: torch.Generator | None, x: Tensor) -> None:
    """Raise :class:`ConfigError` if ``generator`` lives on another device than ``x``."""
    if generator is not None and torch.device(generator.device).type != x.device.type:
        raise ConfigError(f"the generator is on {generator.device} but the inputs are on {x.device}; use one device")


def per_sample_eps(eps: float | Tensor, x: Tensor) -> Tensor:
    """ε as a validated ``(N,)`` tensor on ``x``'s device and dtype.

    Shape:
        - eps: scalar, or ``(N,)``.
        - output: ``(N,)``.
    """
    n = x.shape[0]
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device).detach()
    if e.ndim == 0:
        e = e.expand(n)
    if e.shape != (n,):
        raise ConfigError(f"eps must be a number or a tensor of shape ({n},); got shape {tuple(e.shape)}")
    if e.numel() and not bool(torch.isfinite(e).all()):
        raise ConfigError("eps contains NaN or Inf; give finite radii")
    if e.numel() and bool((e < 0).any()):
        raise ConfigError(f"eps must be >= 0; got {float(e.min()):.4g}")
    return e.contiguous()


def view(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample ``(N,)`` tensor to broadcast against ``like`` ``(N, *)``."""
    return v.reshape(v.shape[0], *([1] * (like.ndim - 1)))


def norm(d: Tensor, p: str) -> Tensor:
    """Per-sample L2 or L∞ norm ``(N,)`` of ``d`` ``(N, *)``."""
    flat = d.flatten(1)
    if p == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    return torch.linalg.vector_norm(flat, dim=1)


def direction(g: Tensor, p: str) -> Tensor:
    """Steepest-ascent unit direction: ``sign(g)`` (L∞) or ``g/‖g‖₂`` (L2, zero where ``g`` is zero).

    The L2 case first divides by ``max|g|`` so that tiny gradients (saturated sigmoids) do not underflow.
    """
    if p == "linf":
        return g.sign()
    peak = g.flatten(1).abs().amax(dim=1)
    g = g / view(torch.where(peak > 0, peak, torch.ones_like(peak)), g)
    length = torch.linalg.vector_norm(g.flatten(1), dim=1)
    return g / view(torch.where(length > 0, length, torch.ones_like(length)), g)


def box(x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """Element bounds ``(max(x − ε, 0), min(x + ε, 1))`` of the L∞ ball ∩ [0, 1] (``eps`` is ``(N,)``)."""
    e = view(eps, x)
    return (x - e).clamp_(min=0), (x + e).clamp_(max=1)


def project(x_adv: Tensor, x: Tensor, eps: Tensor, p: str, bounds: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Project ``x_adv`` onto the ε-ball around ``x`` intersected with [0, 1].

    Args:
        x_adv: points to project ``(N, *)``.
        x: ball centres ``(N, *)``.
        eps: radii ``(N,)``.
        p: ``"linf"`` or ``"l2"``.
        bounds: precomputed :func:`box` for L∞ (saves two ops per call in loops).
    """
    if p == "linf":
        lo, hi = bounds if bounds is not None else box(x, eps)
        return torch.clamp(x_adv, lo, hi)
    d = x_adv - x
    length = norm(d, "l2")
    factor = torch.clamp(eps / length.clamp_min(torch.finfo(length.dtype).tiny), max=1.0)
    return (x + d * view(factor, d)).clamp_(0, 1)


MASK64 = (1 << 64) - 1


def splitmix64(value: int) -> int:
    """One step of the SplitMix64 mixer (Steele et al. 2014): a 64-bit integer to a well-scrambled one."""
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class SampleDraws:
    """Random numbers drawn per sample, each row from a generator seeded by its own key, so a sample's draw does not
    depend on which other samples share its batch, its position there, or the process (rank) that trains it.

    Each call (``rand``, ``randn``, ``rand_rows``) reseeds one generator per row with ``mix(key, call number)``: the
    ``k``-th call of a batch gives a row the same numbers whatever the batch. One small draw per row replaces one
    batched draw (measured: a few percent of an IMA step on the CPU, see docs/distributed.md).

    Args:
        keys: one 64-bit key per row, e.g. from :meth:`of`.
        device: where the draws are made (a CUDA generator on CUDA).
    """

    def __init__(self, keys: list[int], device: torch.device) -> None:
        self.keys = keys
        self.device = device
        self._calls = 0
        self._generator = torch.Generator(device=device)

    @classmethod
    def of(cls, seed: int, epoch: int, index: Tensor) -> SampleDraws:
        """Draws keyed by (run ``seed``, ``epoch``, dataset ``index``) of each row, made on ``index``'s device.

        Shape:
            index: ``(B,)`` integer dataset indices.
        """
        base = splitmix64(splitmix64(seed & MASK64) ^ (epoch & MASK64))
        return cls([splitmix64(base ^ i) for i in index.tolist()], index.device)

    def _rows(self, draw: str, row_shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        self._calls += 1
        rows = []
        for key in self.keys:
            self._generator.manual_seed(splitmix64(key ^ self._calls))
            fn = torch.rand if draw == "rand" else torch.randn
            rows.append(fn(row_shape, generator=self._generator, device=self.device, dtype=dtype))
        return torch.stack(rows) if rows else torch.empty((0, *row_shape), device=self.device, dtype=dtype)

    def rand(self, like: Tensor) -> Tensor:
        """``U[0, 1)`` of ``like``'s shape ``(B, *)`` and dtype."""
        return self._rows("rand", tuple(like.shape[1:]), like.dtype)

    def randn(self, like: Tensor) -> Tensor:
        """Standard normal of ``like``'s shape ``(B, *)`` and dtype."""
        return self._rows("randn", tuple(like.shape[1:]), like.dtype)

    def rand_rows(self, like: Tensor) -> Tensor:
        """One ``U[0, 1)`` number per row, ``(B,)``."""
        return self._rows("rand", (), like.dtype)


Draws: TypeAlias = "torch.Generator | SampleDraws | None"
"""Where random starts come from: a generator for the whole batch (``None``: torch's global one), or
:class:`SampleDraws`."""


def uniform(x: Tensor, draws: Draws) -> Tensor:
    """``U[0, 1)`` of ``x``'s shape, device and dtype."""
    if isinstance(draws, SampleDraws):
        return draws.rand(x)
    return torch.rand(x.shape, generator=draws, device=x.device, dtype=x.dtype)


def random_start(x: Tensor, eps: Tensor, p: str, generator: Draws) -> Tensor:
    """A random point of the ε-ball around ``x``, clamped to [0, 1].

    L∞: uniform in the cube. L2: uniform in the ball (Gaussian direction, radius ``ε·U^(1/d)``).
    """
    n, dim = x.shape[0], x[0].numel()
    if p == "linf":
        return (x + (2 * uniform(x, generator) - 1) * view(eps, x)).clamp_(0, 1)
    if isinstance(generator, SampleDraws):
        g, r = generator.randn(x), generator.rand_rows(x)
    else:
        g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        r = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
    return (x + direction(g, "l2") * view(eps * r.pow_(1.0 / max(dim, 1)), x)).clamp_(0, 1)


def uniform_noise(x: Tensor, size: Tensor, norm: str, *, symmetric: bool = False, generator: Draws = None) -> Tensor:
    """IMA white noise: ``U[0, 1)^d`` (``U[−1, 1)^d`` if symmetric) rescaled to L2 norm ``size``, or ``size·U`` (L∞).

    Args:
        x: reference batch (shape, device, dtype).
        size: per-sample L2 norm, or L∞ bound, of the noise.
        norm: ``"l2"`` or ``"linf"``.

    Shape:
        - x: ``(N, *)``; size: ``(N,)``; output: ``(N, *)``.
    """
    u = uniform(x, generator)
    if symmetric:
        u = 2 * u - 1
    if norm == "l2":
        u = direction(u, "l2")
    return u * view(size, x)
