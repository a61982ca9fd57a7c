"""Square Attack: a score-based random search, forward passes only, for any ``(N, C, *spatial)`` input.

Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random search", ECCV
2020 (arXiv 1912.00049); defaults from the official ``autoattack/square.py`` (fra31/auto-attack at a392200) as
AutoAttack runs it: 5,000 queries, ``p_init = 0.8``, the unrescaled ``p`` schedule, the margin loss. Each query
changes one window (a hyper-cube of side ``s`` over every spatial axis, shared by the batch) and keeps the change
where it lowers the loss or fools the model. It needs no gradient, so it is AutoAttack's check against gradient
masking.

Generalised here, named: the task's margin replaces the logit margin (binary, multi-label and dense tasks work);
the spatial axes may be any number (AutoAttack hard-codes ``c, h, w`` and fails on 3D volumes); the L2 ring
pattern is the Chebyshev-distance construction in ``d`` dimensions, split in two halves of opposite sign along a
random axis (in 2D, the official pattern and its random transposition); per-sample random signs of the L2 update
are drawn for the whole batch and indexed, so a sample's search does not depend on which others are still running.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from medrobust.attacks.base import ATTACKS, AttackResult, WorstCase, prepare
from medrobust.errors import ConfigError
from medrobust.geometry import Norm, box, check_norm, project, view
from medrobust.runtime import model_mode
from medrobust.tasks.base import Task

__all__ = ["Square", "p_schedule", "ring_pattern"]

Window = tuple[slice, ...]


def p_schedule(i: int, p_init: float = 0.8, queries: int = 5000, rescale: bool = False) -> float:
    """The fraction of pixels the ``i``-th window covers (the official halving schedule).

    Examples:
        >>> [p_schedule(i) for i in (0, 11, 51, 201, 8001)]
        [0.8, 0.4, 0.2, 0.1, 0.0015625]
    """
    it = int(i / queries * 10000) if rescale else i
    for bound, div in ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32), (500, 16), (200, 8), (50, 4)):
        if it > bound:
            return p_init / div
    return p_init / 2 if it > 10 else p_init


def ring_pattern(shape: tuple[int, ...], device: torch.device | str = "cpu") -> Tensor:
    """Nested rings around the centre with weight ``Σ_{k ≥ r} 1/(k+1)²`` at Chebyshev radius ``r``, unit L2 norm.

    Shape:
        - returns ``shape`` (any number of axes).

    Examples:
        >>> (ring_pattern((3, 3)) / ring_pattern((3, 3))[0, 0]).tolist()
        [[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]
    """
    return _ring(tuple(shape), str(device)).clone()


@functools.lru_cache(maxsize=256)
def _ring(shape: tuple[int, ...], device: str) -> Tensor:
    centre = [n // 2 for n in shape]
    grids = torch.meshgrid(*[torch.arange(n, device=device) for n in shape], indexing="ij")
    radius = torch.stack([(g - c).abs() for g, c in zip(grids, centre)]).amax(dim=0)
    levels = max(c + 1 for c in centre)
    weights = (1.0 / torch.arange(1, levels + 1, device=device, dtype=torch.float32) ** 2).flip(0).cumsum(0).flip(0)
    out = weights[radius]
    return out / out.norm()


def _eta(s: int, dims: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """The L2 update pattern on a cube of side ``s``: two ring halves of opposite sign, unit norm."""
    axis = int(torch.randint(dims, (1,), generator=generator, device=generator.device if generator else "cpu"))
    half = s // 2
    shape = [s] * dims
    first, second = list(shape), list(shape)
    first[axis], second[axis] = half, s - half
    pattern = torch.cat([ring_pattern(tuple(first), device), -ring_pattern(tuple(second), device)], dim=axis)
    return pattern / pattern.norm()


@ATTACKS.register("square", help="Square Attack (Andriushchenko et al. 2020): score-based random search, L∞/L2")
@dataclass(frozen=True)
class Square:
    """Square Attack on any task and any number of spatial axes (see the module docstring).

    Args:
        norm: ``"linf"`` or ``"l2"``.
        queries: model evaluations per sample after the first (5,000, AutoAttack).
        p_init: initial fraction of pixels a window covers (0.8).
        rescale_schedule: stretch the ``p`` schedule to ``queries`` (AutoAttack: False).
        train_mode: run the model in train mode; default eval mode.

    Shape:
        - x: ``(N, C, *spatial)`` in [0, 1], at least one spatial axis; eps: float or ``(N,)``.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from medrobust.tasks import ClassificationTask
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
        >>> _ = model[1].weight.data.fill_(1.0); _ = model[1].bias.data.fill_(-8.0)
        >>> x = torch.full((2, 1, 4, 4), 0.5); x[1] += 0.2
        >>> r = Square(queries=50)(model, x, torch.ones(2), task=ClassificationTask("binary"), eps=0.1,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> r.fooled.tolist()
        [True, False]
    """

    norm: Norm = "linf"
    queries: int = 5000
    p_init: float = 0.8
    rescale_schedule: bool = False
    train_mode: bool = False

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.queries < 0 or not 0 < self.p_init <= 1:
            raise ConfigError(f"Square needs queries ≥ 0 and 0 < p_init ≤ 1; got {self.queries}, {self.p_init}")

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        *,
        task: Task,
        eps: float | Tensor,
        generator: torch.Generator | None = None,
        rows: Tensor | None = None,
    ) -> AttackResult:
        """Attack ``model`` at ``(x, y)``; ``rows`` attacks only those rows (draws as for the whole batch)."""
        x, e, rows = prepare(x, y, task, eps, generator, rows)
        if x.ndim < 3:
            raise ConfigError(f"Square needs inputs (N, C, *spatial) with a spatial axis; got {tuple(x.shape)}")
        with model_mode(model, self.train_mode), torch.no_grad():
            search = _Search(self, model, task, x, y, e, rows, generator)
            return search.run()


class _Search:
    """The state of one Square run: the best point per sample, its loss, and the samples still robust."""

    def __init__(
        self, cfg: Square, model: nn.Module, task: Task, x: Tensor, y: Tensor, eps: Tensor, rows: Tensor,
        generator: torch.Generator | None,
    ) -> None:  # fmt: skip
        self.cfg, self.model, self.task, self.gen = cfg, model, task, generator
        self.x_all, self.eps_all, self.rows = x, eps, rows
        self.x, self.y, self.eps = x[rows], y[rows], eps[rows]
        self.spatial = tuple(x.shape[2:])
        self.bounds = box(self.x, self.eps) if cfg.norm == "linf" else None

    def _rand(self, *shape: int) -> Tensor:
        dev = self.gen.device if self.gen is not None else self.x.device
        return torch.rand(shape, generator=self.gen, device=dev).to(self.x.device)

    def _signs(self, *shape: int) -> Tensor:
        return torch.sign(2 * self._rand(*shape) - 1).to(self.x.dtype)

    def _score(self, x: Tensor, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.model(x)
        return out, self.task.margin(out, self.y[ids]).float(), ~self.task.correct(out, self.y[ids])

    def _window(self, s: int) -> Window:
        starts = [int((self._rand(1) * (n - s)).long()) for n in self.spatial]
        return (slice(None), slice(None), *(slice(a, a + s) for a in starts))

    def _side(self, i: int, minimum: int) -> int:
        p = p_schedule(i, self.cfg.p_init, self.cfg.queries, self.cfg.rescale_schedule)
        d = len(self.spatial)
        side = max(round((p * math.prod(self.spatial)) ** (1 / d)), minimum)
        if self.cfg.norm == "l2" and side % 2 == 0:
            side += 1
        return min(side, min(self.spatial))

    def _start(self) -> Tensor:
        n_all, c = self.x_all.shape[:2]
        if self.cfg.norm == "linf":
            stripes = self._signs(n_all, c, *[1] * (len(self.spatial) - 1), self.spatial[-1])[self.rows]
            return (self.x + view(self.eps, self.x) * stripes).clamp(0, 1)
        s = max(min(self.spatial) // 5, 1)
        delta = torch.zeros_like(self.x)
        starts = [(n - (n // s) * s) // 2 for n in self.spatial]
        grid = torch.cartesian_prod(*[torch.arange(n // s) for n in self.spatial]).reshape(-1, len(self.spatial))
        for cell in grid.tolist():
            tile = (slice(None), slice(None), *(slice(a + k * s, a + (k + 1) * s) for a, k in zip(starts, cell)))
            signs = self._signs(n_all, c, *[1] * len(self.spatial))[self.rows]
            delta[tile] += _eta(s, len(self.spatial), self.gen, self.x.device) * signs
        return self._l2_point(delta, torch.arange(len(self.x), device=self.x.device))

    def _l2_point(self, delta: Tensor, ids: Tensor) -> Tensor:
        length = delta.flatten(1).norm(dim=1)
        return (self.x[ids] + delta * view(self.eps[ids] / (length + 1e-12), delta)).clamp(0, 1)

    def _propose(self, i: int, best: Tensor, ids: Tensor) -> Tensor:
        x, eps = self.x[ids], self.eps[ids]
        if self.cfg.norm == "linf":
            s = self._side(i, 1)
            win = self._window(s)
            step = torch.zeros_like(x[:1])
            step[win] = 2 * self._signs(x.shape[1], *[1] * len(self.spatial))
            lo, hi = self.bounds  # type: ignore[misc]
            return torch.clamp(best + view(eps, x) * step, lo[ids], hi[ids])
        return self._propose_l2(i, best, ids)

    def _propose_l2(self, i: int, best: Tensor, ids: Tensor) -> Tensor:
        x, eps = self.x[ids], self.eps[ids]
        d = len(self.spatial)
        axes = tuple(range(2, 2 + d))
        delta = best - x
        s = self._side(i, 3)
        win, win2 = self._window(s), self._window(s)
        in_first = delta[win].pow(2).sum(dim=axes, keepdim=True).sqrt()
        mask = torch.zeros_like(delta)
        mask[win], mask[win2] = 1.0, 1.0
        in_both = (delta * mask).pow(2).sum(dim=axes, keepdim=True).sqrt()
        total = delta.flatten(1).norm(dim=1)
        signs = self._signs(len(self.x_all), x.shape[1], *[1] * d)[self.rows][ids]
        update = _eta(s, d, self.gen, x.device) * signs + delta[win] / (1e-12 + in_first)
        room = (view(eps, x) ** 2 - view(total, x) ** 2).clamp_min(0) / x.shape[1] + in_both**2
        update = update / (1e-12 + update.pow(2).sum(dim=axes, keepdim=True).sqrt()) * room.sqrt()
        delta[win2] = 0.0
        delta[win] = update
        return self._l2_point(delta, ids)

    def run(self) -> AttackResult:
        """Search until every sample is fooled or the queries are spent."""
        ids_all = torch.arange(len(self.x), device=self.x.device)
        best = self._start()
        out, margin, fooled = self._score(best, ids_all)
        worst = WorstCase(best.clone(), out, fooled, margin)
        queries = 0
        for i in range(self.cfg.queries):
            ids = (~worst.fooled).nonzero()[:, 0]
            if ids.numel() == 0:
                break
            proposal = self._propose(i, worst.x[ids], ids)
            out, margin, fooled = self._score(proposal, ids)
            take = (margin > worst.score[ids]) | fooled
            rows = ids[take]
            worst.x[rows], worst.out[rows] = proposal[take], out[take]
            worst.score[rows], worst.fooled[rows] = margin[take], fooled[take]
            queries += 1
        x_adv = project(worst.x, self.x, self.eps, self.cfg.norm, self.bounds)
        return AttackResult(x_adv, worst.fooled.clone(), worst.out, queries)
