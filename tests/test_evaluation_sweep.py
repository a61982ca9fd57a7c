"""The ε sweep against independent attack runs and the analytic distances of a linear classifier."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import nn

from medrobust.attacks import ATTACKS, AttackResult
from medrobust.evaluation import build_attack, pgd_sweep
from medrobust.runtime import fork_generators
from medrobust.tasks import ClassificationTask

TASK = ClassificationTask(kind="binary", num_classes=2)
EPS = [0.0, 0.01, 0.03, 0.06, 0.1]


def linear_problem(
    n: int = 200, d: int = 16, seed: int = 0
) -> tuple[nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A one-logit linear model, inputs far from the box edges, and each sample's L∞ distance to the boundary.

    Labels are random, so about half the samples are misclassified (distance −1: broken at every ε).
    """
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(d, 1)
    w = torch.randn(1, d, generator=g)
    with torch.no_grad():
        model.weight.copy_(w)
        model.bias.fill_(-0.5 * float(w.sum()))  # the boundary passes through the box centre
        x = 0.4 + 0.2 * torch.rand(n, d, generator=g)
        z = model(x).squeeze(1)
    y = torch.randint(0, 2, (n,), generator=g)
    dist = z.abs() / model.weight.abs().sum()
    dist = torch.where((z > 0).long() == y, dist, torch.full_like(dist, -1.0))
    return model, x, y, dist


def test_sweep_matches_analytic_and_independent_runs() -> None:
    model, x, y, dist = linear_problem()
    attack = build_attack("pgd", norm="linf", steps=10)
    sweep = pgd_sweep(model, x, y, task=TASK, attack=attack, eps_list=EPS, generator=torch.Generator().manual_seed(0))
    assert len(sweep) == len(EPS)
    for eps, res in zip(EPS, sweep):
        expected = dist < eps
        assert torch.equal(res.fooled, expected)
        independent = attack(model, x, y, task=TASK, eps=eps, generator=torch.Generator().manual_seed(1))
        assert torch.equal(independent.fooled, expected)
        assert torch.equal(res.fooled, ~TASK.correct(res.output, y))
        assert bool(((res.x_adv - x).abs().amax(dim=1) <= eps + 1e-6).all())
    assert 0.3 < float(sweep[0].fooled.float().mean()) < 0.7  # clean-misclassified samples stay broken
    assert float(sweep[-1].fooled.float().mean()) > float(sweep[1].fooled.float().mean())


def test_broken_samples_are_kept_and_not_attacked_again() -> None:
    model, x, y, _ = linear_problem(n=64)
    pgd = ATTACKS.create("pgd", norm="linf", steps=5, early_stop=True)
    sizes: list[int] = []

    def counting(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> AttackResult:
        sizes.append(len(x))
        return pgd(model, x, y, **kw)

    sweep = pgd_sweep(model, x, y, task=TASK, attack=counting, eps_list=EPS)
    fooled_counts = [int(r.fooled.sum()) for r in sweep]
    assert sizes == [64 - c for c in [0, *fooled_counts[:-1]] if c < 64]  # no call once all are broken
    assert fooled_counts[-1] == 64 and sweep[-1].steps_run == 0
    for prev, cur in itertools.pairwise(sweep):
        kept = prev.fooled
        assert bool(cur.fooled[kept].all())
        assert torch.equal(cur.x_adv[kept], prev.x_adv[kept])
        assert torch.equal(cur.output[kept], prev.output[kept])


def test_sweep_l2_multiclass_monotone() -> None:
    torch.manual_seed(0)
    model = nn.Linear(12, 3)
    x = 0.3 + 0.4 * torch.rand(40, 12)
    y = torch.randint(0, 3, (40,))
    task = ClassificationTask(kind="multiclass", num_classes=3)
    sweep = pgd_sweep(
        model, x, y, task=task, attack=build_attack("pgd", norm="l2", steps=10), eps_list=[0, 0.1, 0.5, 2.0]
    )
    counts = [int(r.fooled.sum()) for r in sweep]
    assert counts == sorted(counts)
    assert counts[0] == int((~task.correct(model(x), y)).sum())


def test_sweep_rejects_bad_eps() -> None:
    model, x, y, _ = linear_problem(n=4)
    with pytest.raises(ValueError, match="increasing"):
        pgd_sweep(model, x, y, task=TASK, attack=build_attack("pgd", norm="linf"), eps_list=[0.1, 0.05])


@pytest.mark.parametrize("options", [{"steps": 4}, {"steps": 3, "restarts": 2, "loss": ("ce", "margin")}])
def test_survivors_get_exactly_the_independent_runs_starts(options: dict[str, Any]) -> None:
    """On a curved model with few steps (random starts decide), every sample still robust at ε gets the result of
    the independent run with that ε's generator; the sweep breaks a sample iff that run or a smaller ε did."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    x = torch.rand(96, 16, generator=torch.Generator().manual_seed(3))
    y = model(x).argmax(1).detach()
    task = ClassificationTask(kind="multiclass", num_classes=3)
    eps = [0.02, 0.05, 0.08, 0.12]
    attack = build_attack("pgd", norm="l2", rel_step=2.5, **options)
    sweep = pgd_sweep(model, x, y, task=task, attack=attack, eps_list=eps, generator=torch.Generator().manual_seed(7))
    gens = fork_generators(torch.Generator().manual_seed(7), len(eps))
    broken_before = torch.zeros(len(x), dtype=torch.bool)
    partial = 0
    for e, g, res in zip(eps, gens, sweep):
        independent = attack(model, x, y, task=task, eps=e, generator=g)
        assert torch.equal(res.fooled, independent.fooled | broken_before)
        survivors = ~broken_before
        assert torch.equal(res.x_adv[survivors], independent.x_adv[survivors])
        partial += int(0 < int(independent.fooled.sum()) < len(x))
        broken_before = res.fooled
    assert partial >= 2  # the test is not trivial: some samples survive, some break


def test_fork_generators_are_reproducible_and_distinct() -> None:
    a = fork_generators(torch.Generator().manual_seed(0), 3)
    b = fork_generators(torch.Generator().manual_seed(0), 3)
    draws = [torch.rand(4, generator=g) for g in a]  # type: ignore[arg-type]
    assert all(torch.equal(d, torch.rand(4, generator=g)) for d, g in zip(draws, b))  # type: ignore[arg-type]
    assert not torch.equal(draws[0], draws[1])
    assert fork_generators(None, 2) == [None, None]
