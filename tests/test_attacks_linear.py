"""Analytic references for the attacks (METHODS §4): linear models whose minimal adversarial distances are known.

Binary ``f(x) = w·x + b``: the L2 distance is ``|f|/‖w‖₂`` and the L∞ distance ``|f|/‖w‖₁``. Three-class and
multi-label models use block-indicator weights, so every pair (label) has the same weight-difference norm and the
nearest boundary is the runner-up logit (the one the margin loss follows). Inputs stay far from the box edges.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from medrobust.attacks import FGSM, PGD, bisect_boundary, estimate_margins, ifgsm
from medrobust.attacks.base import LossName
from medrobust.errors import ConfigError
from medrobust.geometry import Norm
from medrobust.tasks import ClassificationTask

SHAPE = (1, 6, 8)
D = 48
BLOCK = D // 3
DISTANCES = torch.tensor([0.01, 0.03, 0.05, 0.07, 0.13, 0.16, 0.2])  # none within 30 % of EPS
EPS = 0.1


def linear(weight: Tensor, bias: Tensor) -> nn.Sequential:
    layer = nn.Linear(D, weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return nn.Sequential(nn.Flatten(), layer)


def binary_case(norm: Norm) -> tuple[nn.Sequential, Tensor, Tensor, Tensor]:
    """One-logit model, inputs at the given distances (both sides), two clean-misclassified samples."""
    g = torch.Generator().manual_seed(1)
    w = (torch.rand(D, generator=g) + 0.5) * torch.sign(torch.randn(D, generator=g))
    dist = torch.cat([DISTANCES, DISTANCES])
    side = torch.cat([torch.ones(7), -torch.ones(7)])
    f = side * dist * (w.norm() if norm == "l2" else w.abs().sum())
    noise = 0.05 * (2 * torch.rand(14, D, generator=g) - 1)
    noise -= (noise @ w)[:, None] * w / w.dot(w)  # orthogonal to w: f(0.5 + noise) = f(0.5)
    x = 0.5 + noise + f[:, None] * w / w.dot(w)
    model = linear(w[None], -0.5 * w.sum().reshape(1))
    y = (side > 0).long()
    y[[0, 7]] = 1 - y[[0, 7]]  # misclassified when clean
    dist[[0, 7]] = 0.0
    return model, x.reshape(14, *SHAPE), y, dist


def block_offsets(a: Tensor, g: torch.Generator) -> Tensor:
    """Inputs ``0.5 + a_k`` on block k plus zero-sum noise per block; logits are ``BLOCK·a_k``."""
    noise = 0.04 * (2 * torch.rand(a.shape[0], 3, BLOCK, generator=g) - 1)
    noise -= noise.mean(dim=2, keepdim=True)
    return (0.5 + a[:, :, None] + noise).reshape(a.shape[0], *SHAPE)


def block_model() -> nn.Sequential:
    weight = torch.zeros(3, D)
    for k in range(3):
        weight[k, k * BLOCK : (k + 1) * BLOCK] = 1.0
    return linear(weight, -0.5 * weight.sum(dim=1))


def multiclass_case(norm: Norm) -> tuple[nn.Sequential, Tensor, Tensor, Tensor]:
    """Three classes; the distance to pair (y, j) is the logit gap over ‖w_y − w_j‖ (√32 in L2, 32 in L1)."""
    g = torch.Generator().manual_seed(2)
    n = DISTANCES.numel()
    scale = (2 * BLOCK) ** 0.5 if norm == "l2" else 2 * BLOCK
    gap = DISTANCES * scale / BLOCK  # offset difference a_y − a_runner-up giving each distance
    y = torch.arange(n) % 3
    a = torch.zeros(n, 3)
    a[torch.arange(n), y] = gap / 2
    a[torch.arange(n), (y + 1) % 3] = -gap / 2
    a[torch.arange(n), (y + 2) % 3] = -gap / 2 - 0.02  # the third class is farther away
    return block_model(), block_offsets(a, g), y, DISTANCES.clone()


def multilabel_case(norm: Norm) -> tuple[nn.Sequential, Tensor, Tensor, Tensor]:
    """Three labels; flipping label l costs ``BLOCK·|a_l| / ‖w_l‖`` (‖w_l‖₂ = 4, ‖w_l‖₁ = 16)."""
    g = torch.Generator().manual_seed(3)
    n = DISTANCES.numel()
    per = DISTANCES * (BLOCK**0.5 if norm == "l2" else BLOCK) / BLOCK  # |a_l| giving each distance
    target = (torch.rand(n, 3, generator=g) > 0.5).long()
    sign = 2 * target - 1
    a = sign * torch.stack([per, per + 0.05, per + 0.08], dim=1)
    return block_model(), block_offsets(a, g), target, DISTANCES.clone()


def task_of(case: str) -> ClassificationTask:
    if case == "binary":
        return ClassificationTask(kind="binary")
    if case == "multiclass":
        return ClassificationTask(kind="multiclass", num_classes=3)
    return ClassificationTask(kind="multilabel", num_classes=3)


CASES = {"binary": binary_case, "multiclass": multiclass_case, "multilabel": multilabel_case}


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_fgsm_flips_exactly_the_samples_closer_than_eps(norm: Norm, loss: LossName) -> None:
    model, x, y, dist = binary_case(norm)
    result = FGSM(norm=norm, loss=loss)(model, x, y, task=task_of("binary"), eps=EPS)
    assert torch.equal(result.fooled, dist < EPS)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_flips_exactly_the_samples_closer_than_eps(case: str, norm: Norm) -> None:
    model, x, y, dist = CASES[case](norm)
    loss: LossName = "ce" if case == "binary" else "margin"
    g = torch.Generator().manual_seed(0)
    result = PGD(norm=norm, steps=20, loss=loss)(model, x, y, task=task_of(case), eps=EPS, generator=g)
    assert torch.equal(result.fooled, dist < EPS)
    size = (result.x_adv - x).flatten(1).norm(p=2 if norm == "l2" else float("inf"), dim=1)
    assert bool((size <= EPS + 1e-6).all())


def test_pgd_with_per_sample_eps() -> None:
    model, x, y, dist = binary_case("linf")
    eps = torch.where(torch.arange(14) % 2 == 0, 0.04, 0.18)
    result = PGD(norm="linf")(model, x, y, task=task_of("binary"), eps=eps, generator=torch.Generator())
    assert torch.equal(result.fooled, dist < eps)
    assert bool(((result.x_adv - x).abs().flatten(1).amax(1) <= eps + 1e-6).all())


def test_absolute_step_size_is_the_same_for_every_eps() -> None:
    model, x, y, _ = binary_case("linf")
    eps = torch.linspace(0.05, 0.5, 14)
    result = PGD(steps=3, step_size=0.01, random_start=False)(model, x, y, task=task_of("binary"), eps=eps)
    assert torch.allclose((result.x_adv - x).abs().flatten(1).amax(1), torch.full((14,), 0.03), atol=1e-6)


def test_early_stop_keeps_the_first_fooled_iterate() -> None:
    model, x, y, dist = binary_case("linf")
    task = task_of("binary")
    stopped = ifgsm(early_stop=True)(model, x, y, task=task, eps=0.3)
    full = ifgsm()(model, x, y, task=task, eps=0.3)
    step = 0.3 / 4
    first = torch.ceil(dist / step) * step  # L∞ size of the first iterate past the boundary
    assert torch.allclose((stopped.x_adv - x).abs().flatten(1).amax(1), first, atol=1e-5)
    assert torch.allclose((full.x_adv - x).abs().flatten(1).amax(1)[dist > 0], torch.full((12,), 0.3), atol=1e-5)
    assert stopped.steps_run == 3 < full.steps_run == 10


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_estimate_margins_recovers_the_distances(case: str, norm: Norm) -> None:
    model, x, y, dist = CASES[case](norm)
    margins = estimate_margins(model, x, y, task=task_of(case), norm=norm, eps_max=0.15)
    broken = dist < 0.15
    assert torch.allclose(margins[broken], dist[broken], rtol=0.01, atol=2e-4)
    assert bool(torch.isinf(margins[~broken]).all())


def test_bisection_lands_on_the_boundary() -> None:
    model, x, y, dist = binary_case("l2")
    w = dict(model.named_parameters())["1.weight"].detach()[0]
    toward = torch.where(y == 1, -1.0, 1.0)[:, None] * w / w.norm()
    x_far = x + (0.3 * toward).reshape(x.shape)  # crosses at `dist` for correct samples closer than 0.3
    edge = bisect_boundary(model, x, x_far, y, task=task_of("binary"), steps=12)
    assert torch.equal(edge.crossed, dist > 0)
    assert bool((edge.distance <= dist + 1e-6).all()) and bool((dist <= edge.upper + 1e-6).all())
    assert bool((edge.upper - edge.distance <= 0.3 / 2**12 + 1e-6).all())
    assert torch.equal(edge.distance[dist == 0], torch.zeros(2))
    with torch.no_grad():
        assert bool(task_of("binary").correct(model(edge.last_correct), y)[dist > 0].all())
        assert not bool(task_of("binary").correct(model(edge.first_wrong), y).any())


def test_bisection_of_a_segment_that_stays_correct() -> None:
    model, x, y, dist = binary_case("l2")
    w = dict(model.named_parameters())["1.weight"].detach()[0]
    away = torch.where(y == 1, 1.0, -1.0)[:, None] * w / w.norm()
    x_far = x + (0.05 * away).reshape(x.shape)
    edge = bisect_boundary(model, x, x_far, y, task=task_of("binary"))
    assert not bool(edge.crossed.any())
    correct = dist > 0
    assert torch.equal(edge.last_correct[correct], x_far[correct])
    assert bool(torch.isinf(edge.upper[correct]).all()) and torch.equal(edge.upper[~correct], torch.zeros(2))


@pytest.mark.parametrize("case", ["binary", "multiclass"])
def test_illinois_is_exact_on_a_linear_margin_in_two_steps(case: str) -> None:
    model, x, y, _ = CASES[case]("l2")
    task = task_of(case)
    ref = bisect_boundary(model, x, _pushed(model, x, y, task), y, task=task, steps=30)
    fast = bisect_boundary(model, x, _pushed(model, x, y, task), y, task=task, steps=2, refine="illinois")
    assert torch.equal(fast.crossed, ref.crossed)
    assert torch.allclose(fast.distance, ref.distance, atol=2.5e-4)  # 10 halvings of these ~0.5-long segments: 5e-4


def _pushed(model: nn.Module, x: Tensor, y: Tensor, task: ClassificationTask) -> Tensor:
    """Points well across the boundary: a 30-step PGD at a large L2 radius."""
    return PGD(norm="l2", steps=30, random_start=False).__call__(model, x, y, task=task, eps=0.5).x_adv


def test_illinois_matches_bisection_on_a_curved_boundary() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    x = torch.rand(64, 1, 4, 4)
    task = ClassificationTask(kind="multiclass", num_classes=3)
    with torch.no_grad():
        y = model(x).argmax(1)
    far = PGD(norm="l2", steps=40, random_start=False).__call__(model, x, y, task=task, eps=3.0).x_adv
    ref = bisect_boundary(model, x, far, y, task=task, steps=30)
    fast = bisect_boundary(model, x, far, y, task=task, steps=4, refine="illinois")
    ten = bisect_boundary(model, x, far, y, task=task, steps=10)
    assert bool(ref.crossed.all())
    err_fast = (fast.distance - ref.distance).abs() / ref.distance
    err_ten = (ten.distance - ref.distance).abs() / ref.distance
    assert float(err_fast.median()) <= float(err_ten.median())  # 4 Illinois steps beat 10 halvings
    with torch.no_grad():
        assert bool(task.correct(model(fast.last_correct), y).all())
        assert not bool(task.correct(model(fast.first_wrong), y).any())


def test_unknown_refinement_is_a_config_error() -> None:
    model, x, y, _ = binary_case("l2")
    with pytest.raises(ConfigError, match="illinois"):
        bisect_boundary(model, x, x, y, task=task_of("binary"), refine="newton")  # type: ignore[arg-type]
