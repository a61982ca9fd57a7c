"""AutoAttack through ``evaluate`` on every task kind, its breakdown rows and self-checks, and resumable runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.evaluation import ThreatSpec, evaluate
from medrobust.evaluation.results import Results
from test_attacks_square_autoattack import Rounding, masked_problem


def own_labels(model: nn.Module, x: Tensor, kind: str, classes: int, name: str) -> ArrayDataset:
    """A test split whose targets are the model's own clean predictions (clean accuracy 1 by construction)."""
    with torch.no_grad():
        z = model(x)
    if kind == "binary":
        y = (z.reshape(-1) > 0).long()
    elif kind == "multilabel":
        y = (z > 0).long()
    else:  # multiclass, segmentation
        y = z.argmax(1)
    info = DatasetInfo(name, kind, x.shape[1], tuple(x.shape[2:]), classes,
                       tuple(f"c{i}" for i in range(classes)), "test")  # fmt: skip
    return ArrayDataset(x.numpy(), y.numpy().astype(np.int64), info)


def case(kind: str) -> tuple[nn.Module, ArrayDataset, float]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if kind == "binary":  # one logit
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 28 * 28, 1))
        return model, own_labels(model, torch.rand(24, 1, 28, 28, generator=g), "binary", 2, "binary-1logit"), 0.02
    if kind == "multilabel":  # ChestMNIST's format: 1×28×28, 14 labels
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 28 * 28, 14))
        return model, own_labels(model, torch.rand(24, 1, 28, 28, generator=g), "multilabel", 14, "chest-like"), 0.01
    if kind == "3d":  # OrganMNIST3D's format: 1×28×28×28, 11 classes
        model = nn.Sequential(nn.Conv3d(1, 2, 3, stride=2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 13**3, 11))
        return (
            model,
            own_labels(model, torch.rand(12, 1, 28, 28, 28, generator=g), "multiclass", 11, "organ3d-like"),
            0.01,
        )
    model = nn.Conv2d(1, 2, 3, padding=1)  # segmentation: foreground where the local mean is bright
    with torch.no_grad():
        model.weight.copy_(torch.stack([torch.zeros(1, 3, 3), torch.full((1, 3, 3), 10.0 / 9)]))
        model.bias.copy_(torch.tensor([0.0, -5.0]))
    return model, own_labels(model, torch.rand(8, 1, 16, 16, generator=g), "segmentation", 2, "seg"), 0.02


def headline(results: Results, threat: str) -> list[float]:
    metric = "dice" if results.task["kind"] == "segmentation" else "accuracy"
    rows = [r for r in results.rows if r["threat"] == threat and r["metric"] == metric]
    return [r["value"] for r in sorted(rows, key=lambda r: r["level"])]


@pytest.mark.parametrize("kind", ["binary", "multilabel", "3d", "segmentation"])
def test_autoattack_runs_on_every_task_kind_and_is_at_least_as_strong_as_pgd_100(kind: str) -> None:
    model, data, eps = case(kind)
    norm = "linf"
    threats = [
        ThreatSpec.attack("pgd", norm=norm, eps=[eps, 2 * eps], steps=100, label="pgd100"),
        ThreatSpec.attack("autoattack", norm=norm, eps=[eps, 2 * eps], steps=50, queries=40, label="aa"),
    ]
    res = evaluate(model, data, data.task(), threats, seed=0, batch_size=12, progress=False)
    aa, pgd = headline(res, "aa"), headline(res, "pgd100")
    assert all(a <= p + 1e-9 for a, p in zip(aa, pgd)), (aa, pgd)
    assert aa[-1] < 1.0  # the attack does something
    if kind != "segmentation":
        after = {r["metric"]: r["value"] for r in res.rows if r["threat"] == "aa" and r["level"] == 2 * eps}
        members = [m.split(":")[1] for m in after if m.startswith("accuracy_after:")]
        assert members[0] == "apgd-ce" and members[-1] == "square"
        values = [after[f"accuracy_after:{m}"] for m in members]
        assert values == sorted(values, reverse=True) and values[-1] == pytest.approx(aa[-1])
    names = {c["name"]: c["passed"] for c in res.checks}
    assert names["perturbation_bounds"] and names["deterministic"] and names["no_gradient_in_forward"]


def masked_data() -> tuple[Rounding, ArrayDataset]:
    model, x, y, _ = masked_problem()
    info = DatasetInfo("masked", "binary", 1, (6, 8), 2, ("a", "b"), "test")
    return model, ArrayDataset(x.numpy(), y.numpy(), info)


def test_checks_flag_gradient_masking() -> None:
    model, data = masked_data()
    threats = [ThreatSpec.attack("pgd", norm="linf", eps=[0.09], steps=20, label="pgd"),
               ThreatSpec.attack("autoattack", norm="linf", eps=[0.09], steps=20, queries=300, label="aa")]  # fmt: skip
    with pytest.warns(UserWarning):
        res = evaluate(model, data, data.task(), threats, seed=0, progress=False)
    assert headline(res, "pgd") == [1.0] and headline(res, "aa") == [0.5]
    checks = {c["name"]: c for c in res.checks}
    assert not checks["square_vs_gradient"]["passed"] and "masked" in checks["square_vs_gradient"]["message"]
    assert not checks["input_gradients"]["passed"]


class Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(48, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x.flatten(1) + 0.1 * torch.randn_like(x.flatten(1)))


class GradientInside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(48, 1)

    def forward(self, x: Tensor) -> Tensor:
        with torch.enable_grad():
            probe = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.layer(probe.flatten(1)).sum(), probe)
        return self.layer((x - 0.01 * g.sign()).flatten(1))


@pytest.mark.parametrize(("model", "check"), [(Noisy(), "deterministic"), (GradientInside(), "no_gradient_in_forward")])
def test_checks_flag_randomised_and_adaptive_forwards(model: nn.Module, check: str) -> None:
    _, data = masked_data()
    with pytest.warns(UserWarning):
        res = evaluate(model, data, data.task(), [ThreatSpec.attack("pgd", norm="linf", eps=[0.05], steps=2)],
                       seed=0, progress=False)  # fmt: skip
    assert not {c["name"]: c["passed"] for c in res.checks}[check]


class Interrupting(nn.Module):
    """Raises after ``limit`` forward calls, like a process killed mid-evaluation."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit, self.calls = inner, limit, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.calls > self.limit:
            raise KeyboardInterrupt
        return self.inner(x)


@pytest.mark.parametrize("limit", [3, 40, 90])
def test_interrupted_evaluation_resumes_to_identical_rows(tmp_path: Path, limit: int, monkeypatch: Any) -> None:
    monkeypatch.setattr("medrobust.evaluation.resume.Progress.__init__.__defaults__", (0.0,))  # save every batch
    model, data, eps = case("binary")
    threats = [ThreatSpec.attack("pgd", norm="linf", eps=[eps, 2 * eps], steps=10),
               ThreatSpec.noise("gaussian", [0.01])]  # fmt: skip
    want = evaluate(model, data, data.task(), threats, seed=3, batch_size=4, progress=False)
    partial = tmp_path / "results.json.partial"
    with pytest.raises(KeyboardInterrupt):
        evaluate(Interrupting(model, limit), data, data.task(), threats, seed=3, batch_size=4, progress=False,
                 resume=partial)  # fmt: skip
    assert partial.is_file() == (limit > 6)  # the clean pass (6 batches) is saved once it completes
    got = evaluate(model, data, data.task(), threats, seed=3, batch_size=4, progress=False, resume=partial)
    assert got.rows == want.rows and got.checks == want.checks
    assert not partial.exists()  # removed once complete
