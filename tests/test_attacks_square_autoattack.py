"""Square on analytic models and 3D inputs; the AutoAttack cascade on every task kind and on a masked gradient."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from medrobust.attacks import APGD, PGD, AutoAttack, Square
from medrobust.attacks.square import p_schedule, ring_pattern
from medrobust.geometry import Norm
from medrobust.runtime import fork_generators
from medrobust.tasks import ClassificationTask, SegmentationTask
from test_attacks_linear import CASES, EPS, task_of


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("norm", "queries"), [("linf", 300), ("l2", 1000)])
@pytest.mark.parametrize("case", ["multiclass", "multilabel"])
def test_square_breaks_exactly_the_points_closer_than_eps(case: str, norm: Norm, queries: int) -> None:
    model, x, y, dist = CASES[case](norm)
    result = Square(norm=norm, queries=queries)(model, x, y, task=task_of(case), eps=EPS, generator=gen())
    assert torch.equal(result.fooled, dist < EPS)
    size = (result.x_adv - x).flatten(1).norm(p=2 if norm == "l2" else float("inf"), dim=1)
    assert bool((size <= EPS + 1e-5).all())
    assert torch.equal(result.fooled, ~task_of(case).correct(model(result.x_adv), y))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_runs_on_3d_volumes(norm: Norm) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 3)
    )
    x = torch.rand(4, 1, 6, 6, 6, generator=gen(1))
    y = model(x).argmax(1).detach()
    result = Square(norm=norm, queries=40)(
        model, x, y, task=ClassificationTask("multiclass", 3), eps=0.3, generator=gen()
    )
    assert result.x_adv.shape == x.shape and result.steps_run <= 40
    size = (result.x_adv - x).flatten(1).norm(p=2 if norm == "l2" else float("inf"), dim=1)
    assert bool((size <= 0.3 + 1e-5).all())


def test_p_schedule_and_ring_pattern() -> None:
    assert [p_schedule(i) for i in (10, 11, 50, 51, 500, 501, 5000)] == pytest.approx(
        [0.8, 0.4, 0.4, 0.2, 0.1, 0.05, 0.8 / 128]
    )
    assert p_schedule(25, queries=100, rescale=True) == pytest.approx(0.8 / 64)  # 25/100 → iteration 2500
    ring = ring_pattern((5, 4, 3))
    assert ring.shape == (5, 4, 3) and float(ring.norm()) == pytest.approx(1.0)
    assert float(ring[2, 2, 1]) == float(ring.max())


class Rounding(nn.Module):
    """Gradient masking: the input is rounded to a 1/8 grid (zero gradient everywhere); logit = Σ q − 24."""

    def forward(self, x: Tensor) -> Tensor:
        q = torch.round(x * 8) / 8
        return q.flatten(1).sum(1, keepdim=True) - 24.0


def masked_problem() -> tuple[Rounding, Tensor, Tensor, Tensor]:
    """48 pixels on the grid; margins 2 (16 pixels one step up: breakable with L∞ 0.09 by 16 crossings) or 7
    (unbreakable: at most 48 crossings of 1/8 = 6)."""
    x = torch.full((8, 1, 6, 8), 0.5)
    flat = x.view(8, -1)
    flat[:4, :16] = 0.625
    flat[4:, :] = 0.625
    flat[4:, :8] = 0.75
    return Rounding(), x, torch.ones(8, dtype=torch.long), torch.arange(8) < 4


def test_gradient_masking_fools_pgd_but_not_the_ensemble() -> None:
    model, x, y, breakable = masked_problem()
    task = ClassificationTask("binary")
    assert bool(task.correct(model(x), y).all())
    pgd = PGD(norm="linf", steps=20)(model, x, y, task=task, eps=0.09, generator=gen())
    assert not bool(pgd.fooled.any())  # zero gradients: PGD reports 100 % robust accuracy
    aa = AutoAttack(norm="linf", steps=20, queries=300)(model, x, y, task=task, eps=0.09, generator=gen())
    assert torch.equal(aa.fooled, breakable)
    names = aa.details["members"]
    assert names == ["apgd-ce", "apgd-dlr", "square"]
    assert set(aa.details["broken_by"][breakable].tolist()) == {names.index("square")}
    assert bool((aa.details["broken_by"][~breakable] == -1).all())


@pytest.mark.parametrize("case", list(CASES))
def test_cascade_breaks_the_union_of_its_members(case: str) -> None:
    torch.manual_seed(0)
    out = {"binary": 1, "multiclass": 4, "multilabel": 3}[case]
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 24), nn.Tanh(), nn.Linear(24, out))
    x = 0.3 + 0.4 * torch.rand(24, 1, 6, 8, generator=gen(1))
    clean = model(x).detach()
    if case == "binary":
        task, y = ClassificationTask("binary"), (clean[:, 0] > 0).long()
    elif case == "multiclass":
        task, y = ClassificationTask("multiclass", 4), clean.argmax(1)
    else:
        task, y = ClassificationTask("multilabel", 3), (clean > 0).long()
    cascade = AutoAttack(norm="l2", steps=10, queries=30)
    eps = {"binary": 0.6, "multiclass": 0.6, "multilabel": 0.25}[case]
    result = cascade(model, x, y, task=task, eps=eps, generator=gen(5))
    union = torch.zeros(24, dtype=torch.bool)
    for (_, member), g in zip(cascade.members(task), fork_generators(gen(5), len(cascade.members(task)))):
        alone = member(model, x, y, task=task, eps=eps, generator=g)
        assert int(result.fooled.sum()) >= int(alone.fooled.sum())  # never more robust than a member
        union |= alone.fooled
    assert torch.equal(result.fooled, union)
    assert 0 < int(result.fooled.sum()) < 24


def test_cascade_members_per_task_and_version() -> None:
    multi = ClassificationTask("multiclass", 10)
    assert [n for n, _ in AutoAttack().members(multi)] == ["apgd-ce", "apgd-t", "square"]
    apgd_t = dict(AutoAttack().members(multi))["apgd-t"]
    assert isinstance(apgd_t, APGD) and apgd_t.targets == 9 and apgd_t.steps == 100
    assert [n for n, _ in AutoAttack(version="plus").members(multi)] == ["apgd-ce", "apgd-dlr", "square", "apgd-t"]
    assert dict(AutoAttack().members(SegmentationTask()))["apgd-dlr"].loss == "dlr"  # type: ignore[union-attr]
    square = dict(AutoAttack().members(multi))["square"]
    assert isinstance(square, Square) and square.queries == 5000 and square.p_init == 0.8
