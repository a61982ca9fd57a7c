"""The threat-grid runner: tidy rows, analytic robust accuracy, determinism, and the summary."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.errors import ConfigError
from medrobust.evaluation import SCHEMA, Results, RobustnessCheckWarning, ThreatSpec, evaluate
from medrobust.tasks import ClassificationTask

METRICS = {"accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "rmsce", "ece", "entropy"}
EPS = (0.0, 0.01, 0.03, 0.06)


def linear_data(n: int = 96, seed: int = 0) -> tuple[nn.Module, ArrayDataset, torch.Tensor]:
    """A one-logit linear model on 1×4×4 images near the box centre, with each sample's L∞ boundary distance."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(16, generator=g)
    lin = nn.Linear(16, 1)
    with torch.no_grad():
        lin.weight.copy_(w[None])
        lin.bias.fill_(-0.5 * float(w.sum()))
    model = nn.Sequential(nn.Flatten(), lin)
    x = 0.4 + 0.2 * torch.rand(n, 1, 4, 4, generator=g)
    with torch.no_grad():
        z = model(x).squeeze(1)
    y = (z > 0).long()
    y[: n // 4] = 1 - y[: n // 4]  # a quarter misclassified
    dist = torch.where((z > 0).long() == y, z.abs() / w.abs().sum(), torch.tensor(-1.0))
    info = DatasetInfo("linear", "binary", 1, (4, 4), 2, ("a", "b"), "test")
    return model, ArrayDataset(x.numpy(), y.numpy(), info), dist


def grid() -> list[ThreatSpec]:
    return [ThreatSpec.attack("pgd", norm="linf", eps=EPS, steps=10), ThreatSpec.noise("gaussian", [0.001, 0.01])]


def run(model: nn.Module, data: object, **kw: object) -> Results:
    task = ClassificationTask(kind="binary", num_classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessCheckWarning)
        return evaluate(model, data, task, grid(), progress=False, batch_size=40, **kw)  # type: ignore[arg-type]


def test_rows_cover_every_metric_threat_and_level() -> None:
    model, ds, _ = linear_data()
    res = run(model, ds)
    keys = {(r["threat"], r["norm"], r["level"]) for r in res.rows}
    assert keys == {("clean", None, 0.0)} | {("pgd", "linf", e) for e in EPS} | {
        ("gaussian", None, 0.001),
        ("gaussian", None, 0.01),
    }
    for key in keys:
        rows = [r for r in res.rows if (r["threat"], r["norm"], r["level"]) == key]
        assert {r["metric"] for r in rows} == METRICS
        assert all(set(r) == {"threat", "norm", "level", "metric", "value", "n"} and r["n"] == 96 for r in rows)
    d = res.to_dict()
    assert d["schema"] == SCHEMA and d["dataset"] == "linear" and d["split"] == "test" and d["n"] == 96
    assert d["task"]["kind"] == "binary" and d["versions"]["torch"] == torch.__version__


def test_robust_accuracy_is_analytic_and_counts_every_sample() -> None:
    model, ds, dist = linear_data()
    res = run(model, ds)
    assert res.value("clean", "accuracy") == pytest.approx(0.75)
    for eps in EPS:
        assert res.value("pgd", "accuracy", eps, "linf") == pytest.approx(float((dist >= eps).float().mean()))
    pgd = next(t for t in res.summary["threats"] if t["threat"] == "pgd")
    assert pgd["clean_accuracy"] == pytest.approx(0.75)
    levels, accs = res.curve("pgd")
    trapezoid = sum((b - a) * (fa + fb) / 2 for a, b, fa, fb in zip(levels, levels[1:], accs, accs[1:]))
    assert pgd["auc_robustness"] == pytest.approx(trapezoid / EPS[-1])
    assert pgd["mean_accuracy"] == pytest.approx(np.mean(accs[1:]))
    assert res.summary["majority_rate"] == pytest.approx(float(ds.class_counts().max() / 96))
    assert sum(res.summary["reliability"]["count"]) == 96
    assert all(c["passed"] for c in res.checks if not c["name"].startswith("large_eps")), res.failed_checks


def test_deterministic_for_a_seed_and_loader_equals_dataset() -> None:
    model, ds, _ = linear_data()
    a, b, c = run(model, ds, seed=3), run(model, ds, seed=3), run(model, ds, seed=4)
    assert a.rows == b.rows and a.checks == b.checks
    noise_a = [r["value"] for r in a.rows if r["threat"] == "gaussian"]
    assert noise_a != [r["value"] for r in c.rows if r["threat"] == "gaussian"]
    loader = torch.utils.data.DataLoader(ds, batch_size=40)
    d = run(model, loader, seed=3)
    assert [r["value"] for r in d.rows if r["threat"] != "gaussian"] == pytest.approx(
        [r["value"] for r in a.rows if r["threat"] != "gaussian"]
    )


def test_subset_and_model_flags_restored() -> None:
    model, ds, _ = linear_data()
    model.train()
    res = run(model, ds, n=30)
    assert res.n == 30 and all(r["n"] == 30 for r in res.rows)
    assert model.training
    with pytest.raises(ConfigError, match="subset"):
        run(model, torch.utils.data.DataLoader(ds, batch_size=8), n=5)


def test_duplicate_threats_need_labels() -> None:
    model, ds, _ = linear_data(n=8)
    task = ClassificationTask(kind="binary", num_classes=2)
    twice = [
        ThreatSpec.attack("pgd", norm="linf", eps=[0.1]),
        ThreatSpec.attack("pgd", norm="linf", eps=[0.2], loss="margin"),
    ]
    with pytest.raises(ConfigError, match="label"):
        evaluate(model, ds, task, twice, progress=False)


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_multiclass_and_multilabel(kind: str) -> None:
    torch.manual_seed(0)
    k = 3
    x = 0.2 + 0.6 * torch.rand(48, 1, 4, 4)
    y = torch.randint(0, k, (48,)) if kind == "multiclass" else torch.randint(0, 2, (48, k))
    info = DatasetInfo("toy", kind, 1, (4, 4), k, ("a", "b", "c"), "test")
    ds = ArrayDataset(x.numpy(), y.numpy(), info)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, k))
    threats = [ThreatSpec.attack("pgd", norm="l2", eps=[0, 0.5], steps=3), ThreatSpec.noise("salt_pepper", [0.1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessCheckWarning)
        res = evaluate(model, ds, ds.task(), threats, progress=False)
    assert {r["metric"] for r in res.rows} == METRICS
    assert res.value("pgd", "accuracy", 0.5, "l2") <= res.value("pgd", "accuracy", 0.0, "l2")
    assert res.value("pgd", "accuracy", 0.0, "l2") == pytest.approx(res.value("clean", "accuracy"))
