"""Attacks, adversarial training and evaluation on dense tasks (segmentation, landmarks) through the shared code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medrobust import models
from medrobust.attacks import PGD
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.evaluation import ThreatSpec, evaluate
from medrobust.geometry import norm as norm_of
from medrobust.methods import METHODS
from medrobust.tasks import LandmarkTask, SegmentationTask
from medrobust.training import fit


def squares(n: int = 16, size: int = 12, seed: int = 0, kind: str = "segmentation") -> ArrayDataset:
    """Bright 3×3 squares at random places; targets are their masks or their centres."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (n, 1, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size), np.int64)
    centres = np.zeros((n, 1, 2), np.float32)
    for i in range(n):
        r, c = rng.integers(1, size - 4, 2)
        x[i, 0, r : r + 3, c : c + 3] += 0.6
        masks[i, r : r + 3, c : c + 3] = 1
        centres[i, 0] = (r + 1, c + 1)
    if kind == "segmentation":
        info = DatasetInfo("squares", "segmentation", 1, (size, size), 2, ("bg", "square"), "train")
        return ArrayDataset(x, masks, info)
    info = DatasetInfo("squares", "landmark", 1, (size, size), 1, ("centre",), "train", {"task": {"tau": 1.0}})
    return ArrayDataset(x, centres, info)


def unet(outputs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create("unet", in_channels=1, num_outputs=outputs, width=4, depth=2)


@pytest.mark.parametrize("kind", ["segmentation", "landmark"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_dense_pgd_respects_per_sample_eps(kind: str, norm: str) -> None:
    data = squares(6, kind=kind)
    task = data.task()
    model = unet(task.output_dim).eval()
    x, y, _ = data.batch(torch.arange(6))
    eps = torch.tensor([0.0, 0.05, 0.1, 0.3, 0.6, 1.0]) * (1.0 if norm == "l2" else 0.1)
    gen = torch.Generator().manual_seed(0)
    for loss in ("ce", "margin"):
        r = PGD(norm=norm, steps=4, loss=loss)(model, x, y, task=task, eps=eps, generator=gen)
        d = norm_of(r.x_adv - x, norm)
        assert bool((d <= eps + 1e-5).all()), (d, eps)
        assert float(d[0]) == 0.0 and float(d[-1]) > 0
        assert float(r.x_adv.min()) >= 0 and float(r.x_adv.max()) <= 1
        assert torch.equal(r.fooled, ~task.correct(model(r.x_adv), y))


def test_dense_pgd_raises_the_segmentation_loss() -> None:
    data = squares(8)
    task = data.task()
    model = unet(2).eval()
    x, y, _ = data.batch(torch.arange(8))
    r = PGD(norm="l2", steps=10, random_start=False)(model, x, y, task=task, eps=1.0)
    assert bool((task.loss(r.output, y) >= task.loss(model(x), y).detach() - 1e-6).all())


@pytest.mark.parametrize("kind", ["segmentation", "landmark"])
def test_pgd_at_trains_dense_tasks(kind: str) -> None:
    data = squares(16, kind=kind)
    task = data.task()
    model = unet(task.output_dim)
    method = METHODS.create("pgd_at", eps=0.5, norm="l2", steps=2)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    hist = fit(model, method, data, data, task=task, optimizer=opt, epochs=2, batch_size=8, progress=False)
    assert np.isfinite(hist.last()["train_loss"]) and "adv_accuracy" in hist.last()
    assert hist.records[-1]["train_loss"] < hist.records[0]["train_loss"] + 1.0


def test_evaluate_dense_rows_and_dice_curve() -> None:
    data = squares(8)
    task = data.task()
    assert isinstance(task, SegmentationTask)
    model = unet(2)
    spec = ThreatSpec.attack("pgd", norm="l2", eps=[0.0, 0.5, 2.0], steps=3)
    res = evaluate(model, data, task, [spec], progress=False)
    metrics = {r["metric"] for r in res.rows}
    assert {"dice", "dice_total", "accuracy"} <= metrics and "rmsce" not in metrics
    threat = res.summary["threats"][0]
    dice = threat["curves"]["dice"]
    assert dice[0] == pytest.approx(res.summary["clean"]["dice"])  # ε = 0 reproduces the clean Dice
    assert 0 <= threat["metric_auc_robustness"]["dice"] <= 1
    assert res.summary["majority_rate"] is None


def test_evaluate_landmarks_mre_curve() -> None:
    data = squares(8, kind="landmark")
    task = data.task()
    assert isinstance(task, LandmarkTask) and task.tau == 1.0
    res = evaluate(unet(1), data, task, [ThreatSpec.attack("pgd", norm="linf", eps=[0.0, 0.05], steps=2)],
                   progress=False)  # fmt: skip
    curves = res.summary["threats"][0]["curves"]
    assert set(curves) >= {"mre", "sdr@1", "sdr@2"} and curves["mre"][0] == pytest.approx(res.summary["clean"]["mre"])
