"""Attack mechanics: geometry, ε = 0, model state, registry, errors, determinism and worst-case bookkeeping."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from medrobust.attacks import ATTACKS, FGSM, PGD, WhiteNoise
from medrobust.attacks.base import WorstCase
from medrobust.errors import ConfigError, DataError, UnknownNameError
from medrobust.geometry import direction, project, random_start
from medrobust.tasks import ClassificationTask

TASK = ClassificationTask(kind="multiclass", num_classes=3)


def small_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )


def batch(n: int = 12, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


ALL = [
    PGD(norm="linf"),
    PGD(norm="l2", restarts=2, loss=("ce", "margin")),
    PGD(norm="linf", early_stop=True, loss="margin"),
    ATTACKS.create("ifgsm", norm="l2"),
    FGSM(norm="linf"),
    FGSM(norm="l2", random_start=True, rel_step=1.25),
    WhiteNoise(draws=5),
    WhiteNoise(norm="linf", draws=5, symmetric=True),
]


@pytest.mark.parametrize("attack", ALL, ids=repr)
def test_eps_zero_returns_x_and_clean_correctness(attack: object) -> None:
    model, (x, y) = small_cnn().eval(), batch()
    result = attack(model, x, y, task=TASK, eps=0.0, generator=torch.Generator().manual_seed(0))  # type: ignore[operator]
    assert torch.equal(result.x_adv, x)
    with torch.no_grad():
        assert torch.equal(result.fooled, ~TASK.correct(model(x), y))


@pytest.mark.parametrize("attack", ALL, ids=repr)
def test_result_is_consistent_and_inside_the_ball(attack: object) -> None:
    model, (x, y) = small_cnn().eval(), batch()
    eps = torch.linspace(0.01, 0.3, 12)
    result = attack(model, x, y, task=TASK, eps=eps, generator=torch.Generator().manual_seed(0))  # type: ignore[operator]
    norm = attack.norm  # type: ignore[attr-defined]
    size = (result.x_adv - x).flatten(1).norm(p=2 if norm == "l2" else float("inf"), dim=1)
    assert bool((size <= eps + 1e-6).all()) and result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    with torch.no_grad():
        out = model(result.x_adv)
    assert torch.allclose(result.output, out, atol=1e-5)
    assert torch.equal(result.fooled, ~TASK.correct(out, y))
    assert not result.output.requires_grad and not result.x_adv.requires_grad


def test_model_flags_grads_and_requires_grad_are_left_alone() -> None:
    model, (x, y) = small_cnn().train(), batch()
    params = dict(model.named_parameters())
    model.get_submodule("1").eval()  # a frozen batch-norm inside a training model keeps its own flag
    params["0.weight"].grad = torch.ones_like(params["0.weight"])
    params["5.bias"].requires_grad_(False)
    PGD(steps=3)(model, x, y, task=TASK, eps=0.1)
    FGSM()(model, x, y, task=TASK, eps=0.1)
    assert model.training and not model.get_submodule("1").training and model.get_submodule("3").training
    assert torch.equal(params["0.weight"].grad, torch.ones_like(params["0.weight"]))
    assert all(p.grad is None for name, p in params.items() if name != "0.weight")
    assert not params["5.bias"].requires_grad and params["5.weight"].requires_grad


def test_flags_are_restored_when_the_model_raises() -> None:
    class Boom(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            raise RuntimeError("boom")

    model = nn.Sequential(Boom()).train()
    x, y = batch()
    with pytest.raises(RuntimeError, match="boom"):
        PGD()(model, x, y, task=TASK, eps=0.1)
    assert model.training and model[0].training


def test_train_mode_option_runs_the_model_in_train_mode() -> None:
    seen: list[bool] = []

    class Spy(nn.Linear):
        def forward(self, x: Tensor) -> Tensor:
            seen.append(self.training)
            return super().forward(x.flatten(1))

    model = Spy(64, 3).eval()
    x, y = batch()
    PGD(steps=2, train_mode=True)(model, x, y, task=TASK, eps=0.1)
    assert seen == [True] * 3 and not model.training
    seen.clear()
    PGD(steps=2)(model.train(), x, y, task=TASK, eps=0.1)
    assert seen == [False] * 3 and model.training


def test_seeded_generator_is_deterministic() -> None:
    model, (x, y) = small_cnn().eval(), batch()
    attack = PGD(norm="l2", steps=3)
    a, b, c = (attack(model, x, y, task=TASK, eps=0.5, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8))
    assert torch.equal(a.x_adv, b.x_adv) and not torch.equal(a.x_adv, c.x_adv)


def test_per_sample_gradients_do_not_depend_on_the_batch() -> None:
    model, (x, y) = small_cnn().eval().double(), batch()
    x = x.double()  # float64, so that batched and single-sample kernels agree to rounding
    attack = PGD(norm="l2", steps=5, random_start=False)
    together = attack(model, x, y, task=TASK, eps=0.3).x_adv
    alone = torch.cat([attack(model, x[i : i + 1], y[i : i + 1], task=TASK, eps=0.3).x_adv for i in range(4)])
    assert torch.allclose(together[:4], alone, atol=1e-10)


def test_targeted_attack_reaches_the_target() -> None:
    model, (x, _) = small_cnn().eval(), batch()
    target = torch.full((12,), 2)
    result = PGD(steps=20, targeted=True)(model, x, target, task=TASK, eps=0.5, generator=torch.Generator())
    assert bool(result.fooled.all()) and bool((result.output.argmax(1) == 2).all())


def flat_model() -> nn.Module:
    """One logit ``1 − 20·relu(Σx − 8.3)`` on 16 inputs: zero gradient at x = 0.5 until a random start crosses 8.3."""

    class Flat(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return 1 - 20 * torch.relu(x.flatten(1).sum(1, keepdim=True) - 8.3)

    return Flat()


def test_restarts_keep_every_success() -> None:
    x, y, task = torch.full((400, 1, 4, 4), 0.5), torch.ones(400, dtype=torch.long), ClassificationTask(kind="binary")
    once = PGD(steps=3)(flat_model(), x, y, task=task, eps=0.1, generator=torch.Generator().manual_seed(0))
    many = PGD(steps=3, restarts=10)(flat_model(), x, y, task=task, eps=0.1, generator=torch.Generator().manual_seed(0))
    assert bool((many.fooled | ~once.fooled).all())  # the first run is shared, later runs only add
    p = 0.0968  # P(sum of 16 U[-0.1, 0.1] > 0.3)
    assert abs(once.fooled.float().mean() - p) < 0.045
    assert abs(many.fooled.float().mean() - (1 - (1 - p) ** 10)) < 0.07
    assert once.steps_run == 3 and many.steps_run == 30


def test_worst_case_prefers_fooled_then_higher_score() -> None:
    best = WorstCase(torch.zeros(3, 2), torch.zeros(3, 1), torch.tensor([False, True, False]), torch.zeros(3))
    best.update(
        None, torch.ones(3, 2), torch.ones(3, 1), torch.tensor([False, False, True]), torch.tensor([1.0, 5, -9])
    )
    assert best.x[:, 0].tolist() == [1, 0, 1] and best.fooled.tolist() == [False, True, True]
    best.update(
        torch.tensor([0, 2]),
        torch.full((2, 2), 2.0),
        torch.full((2, 1), 2.0),
        torch.tensor([False, True]),
        torch.tensor([0.5, 0.0]),
    )
    assert best.x[:, 0].tolist() == [1, 0, 2] and best.score.tolist() == [1.0, 0.0, 0.0]


def test_geometry() -> None:
    g = torch.Generator().manual_seed(0)
    x, eps = torch.full((4000, 1, 1, 2), 0.5), torch.full((4000,), 0.1)
    start = random_start(x, eps, "l2", g)
    radius = (start - x).flatten(1).norm(dim=1) / 0.1
    assert radius.max() <= 1 + 1e-6 and abs(float((radius**2).mean()) - 0.5) < 0.02  # uniform in the disc
    cube = random_start(x, eps, "linf", g) - x
    assert cube.abs().max() <= 0.1 + 1e-7 and abs(float(cube.mean())) < 0.005
    tiny = torch.full((1, 1, 2, 2), 1e-30)
    assert torch.allclose(direction(tiny, "l2").norm(), torch.tensor(1.0))
    assert torch.equal(direction(torch.zeros(2, 1, 2, 2), "l2"), torch.zeros(2, 1, 2, 2))
    far = torch.tensor([[[[1.0, 1.0]]]])
    assert torch.allclose(
        project(far, torch.full_like(far, 0.5), torch.tensor([0.1]), "l2") - 0.5, torch.full_like(far, 0.1 / 2**0.5)
    )
    assert torch.allclose(project(far, torch.full_like(far, 0.95), torch.tensor([0.1]), "linf"), torch.ones_like(far))


def test_registry() -> None:
    assert {"fgsm", "pgd", "ifgsm", "noise"} <= set(ATTACKS.names())
    assert ATTACKS.create("pgd", norm="l2", steps=100) == PGD(norm="l2", steps=100)
    assert ATTACKS.create("ifgsm") == PGD(steps=10, rel_step=2.5, random_start=False)
    assert ATTACKS.create("noise") == WhiteNoise(norm="l2", draws=100)
    with pytest.raises(ConfigError, match="stpes"):
        ATTACKS.create("pgd", stpes=3)
    with pytest.raises(UnknownNameError, match="did you mean 'pgd'"):
        ATTACKS.create("pdg")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: PGD(norm="l3"), ConfigError),  # type: ignore[arg-type]
        (lambda: PGD(steps=0), ConfigError),
        (lambda: PGD(restarts=3, random_start=False), ConfigError),
        (lambda: PGD(loss="hinge"), ConfigError),  # type: ignore[arg-type]
        (lambda: FGSM(rel_step=0), ConfigError),
        (lambda: WhiteNoise(draws=0), ConfigError),
    ],
)
def test_bad_configs(make: object, error: type) -> None:
    with pytest.raises(error):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("x", "eps", "error", "match"),
    [
        (torch.full((2, 1, 4, 4), float("nan")), 0.1, DataError, "NaN"),
        (torch.full((2, 1, 4, 4), 1.5), 0.1, DataError, r"\[0, 1\]"),
        (torch.full((2, 1, 4, 4), 0.5), -0.1, ConfigError, ">= 0"),
        (torch.full((2, 1, 4, 4), 0.5), torch.tensor([0.1, 0.2, 0.3]), ConfigError, "shape"),
        (torch.full((3, 1, 4, 4), 0.5), 0.1, DataError, "targets"),
    ],
)
def test_bad_inputs(x: Tensor, eps: float | Tensor, error: type, match: str) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    for attack in (PGD(), FGSM(), WhiteNoise(draws=1)):
        with pytest.raises(error, match=match) as info:
            attack(model, x, torch.zeros(2, dtype=torch.long), task=TASK, eps=eps)
        assert "\n" not in str(info.value)
