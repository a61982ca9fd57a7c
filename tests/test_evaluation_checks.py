"""Sanity checks fire on constructed bad cases and pass on a sound linear model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medrobust.evaluation import RobustnessCheckWarning, ThreatSpec, evaluate
from medrobust.evaluation import checks as C
from medrobust.tasks import ClassificationTask
from test_evaluation_runner import linear_data

BINARY = ClassificationTask(kind="binary", num_classes=2)


def curve(levels: tuple[float, ...], accuracy: tuple[float, ...], name: str = "pgd") -> C.Curve:
    correct = tuple(torch.arange(10) < round(10 * a) for a in accuracy)
    return C.Curve(name, name, "linf", levels, accuracy, correct, {"steps": 5})


def by_name(checks: list[C.Check]) -> dict[str, C.Check]:
    return {c["name"].split("[")[0]: c for c in checks}


def test_constant_classifier_is_flagged() -> None:
    _, ds, _ = linear_data(n=40)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.fill_(2.0)  # always class 1
    with pytest.warns(RobustnessCheckWarning) as record:
        res = evaluate(
            model, ds, BINARY, [ThreatSpec.attack("pgd", norm="linf", eps=[0, 8 / 255], steps=3)], progress=False
        )
    assert any("majority" in str(w.message) for w in record)
    checks = by_name(res.checks)
    assert not checks["above_majority"]["passed"]
    assert not checks["input_gradients"]["passed"]
    assert not checks["large_eps"]["passed"]
    assert checks["monotone"]["passed"] and checks["eps0_equals_clean"]["passed"]


def test_sound_linear_model_passes_everything() -> None:
    model, ds, _ = linear_data(n=40)
    threats = [ThreatSpec.attack("pgd", norm="linf", eps=[0, 0.05, 1.0], steps=10)]
    res = evaluate(model, ds, BINARY, threats, progress=False)
    assert res.failed_checks == []
    assert "(grid)" in by_name(res.checks)["large_eps"]["message"]  # the grid already covers the whole box


@pytest.mark.parametrize(
    ("outputs", "independent", "flagged"),
    [
        (torch.softmax(torch.randn(20, 3), dim=1), False, True),
        (torch.randn(20, 3), False, False),
        (torch.rand(20, 3), False, False),  # in [0, 1] but rows do not sum to 1
        (torch.sigmoid(torch.randn(20, 1)), True, True),
        (torch.randn(20, 1), True, False),
    ],
)
def test_probability_outputs_are_flagged(outputs: torch.Tensor, independent: bool, flagged: bool) -> None:
    assert C.check_logits(outputs, independent=independent)["passed"] is not flagged


def test_softmax_model_is_flagged_by_the_runner() -> None:
    torch.manual_seed(0)
    x = torch.rand(30, 1, 4, 4)
    y = torch.randint(0, 3, (30,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Softmax(dim=1))
    task = ClassificationTask(kind="multiclass", num_classes=3)
    with pytest.warns(RobustnessCheckWarning) as record:
        res = evaluate(model, torch.utils.data.TensorDataset(x, y), task, [], progress=False)
    assert any("logits" in str(w.message) for w in record)
    assert not by_name(res.checks)["logits"]["passed"]


def test_non_monotone_and_eps_zero_mismatch() -> None:
    bad = curve((0.0, 0.01, 0.02), (0.8, 0.5, 0.7))
    assert not C.check_monotone(bad)["passed"]
    assert C.check_monotone(curve((0.0, 0.01, 0.02), (0.8, 0.5, 0.5)))["passed"]
    eps0 = C.check_eps_zero(bad, clean_accuracy=0.9, n=10)
    assert eps0 is not None and not eps0["passed"]
    assert C.check_eps_zero(curve((0.01,), (0.5,)), 0.9, 10) is None


def test_noise_stronger_than_attack_is_flagged() -> None:
    model, ds, _ = linear_data(n=10)
    x, y, _ = ds.batch(torch.arange(10))
    attack, noise = curve((0.0, 0.1), (0.9, 0.6)), curve((0.0, 0.1), (0.9, 0.4), name="noise")
    res = C.check_noise_vs_attack(model, BINARY, attack, noise, x, y, None)
    assert res is not None and not res["passed"] and "grid" in res["message"]
    broken_at_end = curve((0.0, 0.1, 0.2), (0.9, 0.6, 0.0))  # compared at 0.1, the last ε with accuracy left
    res = C.check_noise_vs_attack(model, BINARY, broken_at_end, curve((0.1, 0.2), (0.4, 0.0), name="noise"), x, y, None)
    assert res is not None and not res["passed"] and "eps=0.1 " in res["message"]
    fine = curve((0.0, 0.1), (0.9, 0.8), name="noise")
    ok = C.check_noise_vs_attack(model, BINARY, attack, fine, x, y, None)
    assert ok is not None and ok["passed"]


def test_noise_probe_against_a_weak_attack() -> None:
    model, ds, _ = linear_data(n=40)
    x, y, _ = ds.batch(torch.arange(40))
    everything_survives = C.Curve(
        "pgd", "pgd", "linf", (0.5,), (1.0,), (torch.ones(40, dtype=torch.bool),), {}
    )  # claims 100 %
    res = C.check_noise_vs_attack(model, BINARY, everything_survives, None, x, y, torch.Generator().manual_seed(0))
    assert res is not None and not res["passed"] and "probe" in res["message"]


def test_warn_failed_emits_one_warning_per_failure() -> None:
    checks = [C.check("a", True, "fine"), C.check("b", False, "bad"), C.check("c", False, "worse")]
    with pytest.warns(RobustnessCheckWarning) as record:
        C.warn_failed(checks)
    assert [str(w.message) for w in record] == ["b: bad", "c: worse"]


def test_majority_rate_multilabel() -> None:
    t = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 1]])
    assert C.majority_rate(t) == 0.5
    assert C.majority_rate(torch.tensor([0, 1, 1, 1])) == 0.75


class Quantize(nn.Module):
    """Input quantisation: a classic gradient-masking "defence" (zero gradient almost everywhere)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4) / 4


def test_gradient_masking_is_flagged() -> None:
    model, ds, _ = linear_data(n=16)
    x, y, _ = ds.batch(torch.arange(16))
    assert C.check_gradients(model, BINARY, x, y)["passed"]
    masked = nn.Sequential(Quantize(), model)
    res = C.check_gradients(masked, BINARY, x, y)
    assert not res["passed"] and "16 of 16" in res["message"]
