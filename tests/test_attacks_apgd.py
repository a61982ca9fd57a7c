"""APGD against analytic references, the DLR losses and their stand-ins, and its step-size schedule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medrobust.attacks import APGD, PGD
from medrobust.attacks.apgd import APGDStep, apgd_start, checkpoints
from medrobust.attacks.losses import AttackLoss, dlr, dlr_targeted, top_other_classes
from medrobust.errors import ConfigError
from medrobust.geometry import Norm
from medrobust.tasks import ClassificationTask
from test_attacks_linear import CASES, EPS, task_of


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_breaks_exactly_the_points_closer_than_eps(case: str, norm: Norm, loss: str) -> None:
    model, x, y, dist = CASES[case](norm)
    g = torch.Generator().manual_seed(0)
    result = APGD(norm=norm, steps=30, loss=loss)(model, x, y, task=task_of(case), eps=EPS, generator=g)
    if case == "multilabel" and loss == "ce":
        # CE over labels follows the mean, not the nearest label: only points well inside are guaranteed
        assert bool(result.fooled[dist < 0.5 * EPS].all()) and not bool(result.fooled[dist > EPS].any())
    else:
        assert torch.equal(result.fooled, dist < EPS)
    size = (result.x_adv - x).flatten(1).norm(p=2 if norm == "l2" else float("inf"), dim=1)
    assert bool((size <= EPS + 1e-5).all()) and bool(((result.x_adv >= 0) & (result.x_adv <= 1)).all())


def test_targeted_apgd_on_three_classes_and_refusals() -> None:
    model, x, y, dist = CASES["multiclass"]("linf")
    task = task_of("multiclass")
    result = APGD(steps=30, targets=9)(model, x, y, task=task, eps=EPS, generator=torch.Generator().manual_seed(0))
    assert torch.equal(result.fooled, dist < EPS)  # k = min(9, K − 1) = 2 targets
    with pytest.raises(ConfigError, match="multi-class"):
        APGD(targets=3)(model[:1], x, y % 2, task=ClassificationTask("binary"), eps=EPS)
    with pytest.raises(ConfigError, match="loss"):
        APGD(loss="kl")


def test_dlr_values_and_scale_invariance() -> None:
    z = torch.tensor([[3.0, 1.0, 0.0, -2.0], [0.0, 2.0, 1.0, 0.5]])
    y = torch.tensor([0, 0])
    # sample 0: −(3 − 1)/(3 − 0); sample 1 (wrong): −(0 − 2)/(2 − 0.5)
    assert dlr(z, y).tolist() == pytest.approx([-2 / 3, 2 / 1.5])
    assert torch.allclose(dlr(7 * z, y), dlr(z, y))
    t = torch.tensor([2, 3])
    # K = 4: denominator z_π1 − (z_π3 + z_π4)/2
    assert dlr_targeted(z, y, t).tolist() == pytest.approx([-3 / (3 - (0 - 2) / 2), 0.5 / (2 - (0.5 + 0) / 2)])
    assert top_other_classes(z, y, 2).tolist() == [[1, 2], [1, 2]]
    three = torch.tensor([[2.0, 0.0, -1.0]])  # K = 3: the target may be π3, so the denominator is the clean one
    assert dlr_targeted(three, torch.tensor([0]), torch.tensor([2]), torch.tensor([3.0])).tolist() == pytest.approx(
        [-1.0]
    )
    with pytest.raises(ConfigError, match="clean logit range"):
        dlr_targeted(three, torch.tensor([0]), torch.tensor([2]))


@pytest.mark.parametrize("kind", ["binary", "multilabel"])
def test_dlr_stand_in_is_the_clean_scaled_margin(kind: str) -> None:
    task = ClassificationTask(kind, 2 if kind == "binary" else 3)  # type: ignore[arg-type]
    out = torch.tensor([[1.5], [-0.5]]) if kind == "binary" else torch.tensor([[1.0, -2.0, 0.5], [0.2, 0.1, -1.0]])
    y = torch.tensor([1, 1]) if kind == "binary" else torch.tensor([[1, 0, 1], [1, 1, 0]])
    clean = task.margin(out, y)
    loss = AttackLoss(task, "dlr", y, clean_margin=clean)
    rows = torch.arange(2)
    assert torch.allclose(loss(out, rows), clean / clean.abs())  # ±1 at the clean point
    assert torch.allclose(loss(3 * out, rows), 3 * clean / clean.abs())  # scale-free up to the clean scale


def test_checkpoint_schedule_and_step_halving() -> None:
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    x = torch.full((2, 4), 0.5)
    rule = APGDStep.around(x, torch.tensor([0.1, 0.1]), "linf", 10)
    grad = torch.ones(2, 4)
    rising, falling = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])
    rule(x, grad, rising, 0)
    for t in (1, 2):  # sample 0's loss rises twice, sample 1's falls twice: only sample 1 oscillates
        rising, falling = rising + 1, falling - 1
        rule(x, grad, torch.stack([rising[0], falling[1]]), t)
    assert rule.state["size"].tolist() == pytest.approx([0.2, 0.1])
    kept = rule.keep(torch.tensor([False, True]))
    assert kept.state["size"].tolist() == pytest.approx([0.1]) and kept.centre.shape == (1, 4)


def test_apgd_start_lies_on_the_sphere() -> None:
    x = torch.full((3, 1, 5, 5), 0.5)
    eps = torch.tensor([0.01, 0.05, 0.1])
    g = torch.Generator().manual_seed(0)
    assert torch.allclose((apgd_start(x, eps, "linf", g) - x).flatten(1).abs().amax(1), eps)
    assert torch.allclose((apgd_start(x, eps, "l2", g) - x).flatten(1).norm(dim=1), eps, rtol=1e-5)


def test_apgd_is_at_least_as_strong_as_pgd_on_a_curved_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    x = torch.rand(128, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1).detach()
    task = ClassificationTask("multiclass", 4)
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    eps = 0.05
    pgd = PGD(norm="l2", steps=20)(model, x, y, task=task, eps=eps, generator=g())
    apgd = APGD(norm="l2", steps=20)(model, x, y, task=task, eps=eps, generator=g())
    assert 0 < int(pgd.fooled.sum()) < len(x)
    assert int(apgd.fooled.sum()) >= int(pgd.fooled.sum())


def test_rows_and_early_stop_match_the_whole_batch(tmp_path: object) -> None:
    model, x, y, _ = CASES["multiclass"]("l2")
    task = task_of("multiclass")
    rows = torch.tensor([1, 4, 6])
    full = APGD(norm="l2", steps=15, restarts=2)(
        model, x, y, task=task, eps=EPS, generator=torch.Generator().manual_seed(3)
    )
    part = APGD(norm="l2", steps=15, restarts=2)(
        model, x, y, task=task, eps=EPS, generator=torch.Generator().manual_seed(3), rows=rows
    )
    assert torch.equal(part.fooled, full.fooled[rows])
