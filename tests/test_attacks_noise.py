"""IMA's white-noise attack: draws of exact size, non-negative by default, broken if any draw fools."""

from __future__ import annotations

import torch
from torch import nn

from medrobust.attacks import WhiteNoise
from medrobust.geometry import uniform_noise
from medrobust.tasks import ClassificationTask


def test_draws_have_exactly_norm_eps_and_are_non_negative() -> None:
    x, g = torch.zeros(50, 1, 8, 8), torch.Generator().manual_seed(0)
    eps = torch.linspace(0.1, 2.0, 50)
    l2 = uniform_noise(x, eps, "l2", generator=g)
    assert torch.allclose(l2.flatten(1).norm(dim=1), eps, rtol=1e-5) and l2.min() >= 0
    linf = uniform_noise(x, eps, "linf", generator=g)
    assert bool((linf.flatten(1).amax(dim=1) <= eps).all()) and linf.min() >= 0
    assert bool((linf.flatten(1).amax(dim=1) > 0.9 * eps).all())  # fills the cube, not a smaller box
    sym = uniform_noise(x, eps, "l2", symmetric=True, generator=g)
    assert torch.allclose(sym.flatten(1).norm(dim=1), eps, rtol=1e-5)
    assert 0.4 < float((sym < 0).float().mean()) < 0.6


def test_attack_points_are_draws_of_size_eps() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x, y = torch.full((6, 1, 8, 8), 0.3), torch.arange(6) % 3
    task = ClassificationTask(kind="multiclass", num_classes=3)
    result = WhiteNoise(draws=4)(model, x, y, task=task, eps=0.5, generator=torch.Generator().manual_seed(0))
    delta = result.x_adv - x
    assert torch.allclose(delta.flatten(1).norm(dim=1), torch.full((6,), 0.5), rtol=1e-5) and delta.min() >= 0
    assert result.steps_run == 4


def test_a_sample_is_broken_if_any_draw_fools() -> None:
    """``f = 0.5·Σ(0.5 − x) + c``: non-negative noise lowers f by ``0.5·‖n‖₁``, which varies between draws."""
    layer = nn.Linear(64, 1)
    with torch.no_grad():
        layer.weight.fill_(-0.5)
        layer.bias.fill_(16.0 + 2.12)
    model = nn.Sequential(nn.Flatten(), layer)
    x, y = torch.full((300, 1, 8, 8), 0.5), torch.ones(300, dtype=torch.long)
    task = ClassificationTask(kind="binary")
    one = WhiteNoise(draws=1)(model, x, y, task=task, eps=0.6, generator=torch.Generator().manual_seed(0))
    many = WhiteNoise(draws=30)(model, x, y, task=task, eps=0.6, generator=torch.Generator().manual_seed(0))
    assert bool((many.fooled | ~one.fooled).all())  # the first draw is shared
    assert 0.05 < float(one.fooled.float().mean()) < 0.5 < float(many.fooled.float().mean())
    with torch.no_grad():
        assert torch.equal(many.fooled, ~task.correct(model(many.x_adv), y))
