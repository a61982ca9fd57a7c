"""Detection: phantom-ct-det boxes, the CenterNet task and detector, attacks, AMAT's detection rules, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medrobust import data, models
from medrobust.attacks import APGD, PGD
from medrobust.cli import main
from medrobust.geometry import norm as norm_of
from medrobust.methods.adaptive_margin import DETECTION_ALPHA
from medrobust.methods.amat import amat
from medrobust.methods.margins import Margins
from medrobust.tasks import DetectionTask
from medrobust.training import fit


def tiny(n: int = 8, split: str = "train") -> data.ArrayDataset:
    return data.load("phantom-ct-det", split, size=32, n=n, progress=False)


def detector(task: DetectionTask) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create("centernet", in_channels=1, num_outputs=task.output_dim, width=4)


def perfect_output(task: DetectionTask, target: torch.Tensor, size: int) -> torch.Tensor:
    """The map a perfect detector outputs: logit +20 at each centre pixel (−20 elsewhere), exact offsets and sizes."""
    out = torch.full((len(target), task.output_dim, size, size), -20.0)
    for i, boxes in enumerate(target):
        for x0, y0, x1, y1, label in boxes.tolist():
            if label < 0:
                continue
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            px, py = int(cx), int(cy)
            out[i, int(label), py, px] = 20.0
            out[i, task.num_classes :, py, px] = torch.tensor([cx - px, cy - py, np.log(x1 - x0), np.log(y1 - y0)])
    return out


def test_phantom_ct_det_boxes_are_valid_and_deterministic() -> None:
    ds = tiny(12)
    again = data.load("phantom-ct-det", "train", size=32, n=12, cache=False, progress=False)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.targets, again.targets)
    assert ds.images.shape == (12, 1, 32, 32) and ds.targets.shape == (12, 3, 5)
    assert ds.info.task_kind == "detection" and ds.info.class_names == ("solid", "ground-glass")
    boxes = ds.targets[ds.targets[..., 4] >= 0]
    assert len(boxes) > 0 and set(boxes[:, 4].tolist()) <= {0.0, 1.0}
    assert bool((boxes[:, :4] >= 0).all() and (boxes[:, :4] <= 32).all())
    assert bool(((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all())
    counts = (ds.targets[..., 4] >= 0).sum(dim=1)
    assert set(counts.tolist()) <= {0, 1, 2, 3} and len(set(counts.tolist())) > 1
    mask = torch.as_tensor(ds.extras["mask"])
    for i, row in enumerate(ds.targets):  # every lesion pixel lies in a box of its image
        inside = torch.zeros(32, 32, dtype=torch.bool)
        for x0, y0, x1, y1, label in row.tolist():
            if label >= 0:
                inside[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
        assert not bool((mask[i].bool() & ~inside).any()), i
    other = data.load("phantom-ct-det", "test", size=32, n=12, progress=False)
    assert not torch.equal(other.images, ds.images)


def test_perfect_output_decodes_to_the_true_boxes() -> None:
    ds = tiny(8)
    task = ds.task()
    assert isinstance(task, DetectionTask) and task.iou == 0.5
    out = perfect_output(task, ds.targets, 32)
    m = task.metrics(out, ds.targets)
    assert m["map"] == pytest.approx(1.0) and m["sensitivity@1fppi"] == 1.0 and m["accuracy"] == 1.0
    assert bool((task.margin(out, ds.targets) < 0).all())
    blank = torch.full_like(out, -20.0)
    has_lesion = (ds.targets[..., 4] >= 0).any(dim=1)
    assert torch.equal(task.correct(blank, ds.targets), ~has_lesion)  # nothing to find, nothing falsely found
    assert torch.equal(task.margin(blank, ds.targets) > 0, has_lesion)
    alarm = out.clone().requires_grad_(True)
    with torch.no_grad():
        alarm[:, 0, 0, 0] = 3.0  # a confident detection (score 0.95) in the corner, where no lesion lies
    assert not bool(task.correct(alarm, ds.targets).any())
    margin = task.margin(alarm, ds.targets)
    assert bool((margin > 0).all())
    (grad,) = torch.autograd.grad(margin[~has_lesion].sum(), alarm)
    assert float(grad[:, 0, 0, 0].abs().sum()) > 0  # the false alarm's score carries the gradient
    loss, blank_loss = task.loss(out, ds.targets), task.loss(blank, ds.targets)
    assert bool((loss < 1e-4).all()) and bool((blank_loss[has_lesion] > 1).all())


def test_margin_gradient_points_at_the_missed_lesion() -> None:
    ds = tiny(8)
    task = ds.task()
    i = int((ds.targets[..., 4] >= 0).any(dim=1).nonzero()[0])
    out = torch.zeros(1, task.output_dim, 32, 32, requires_grad=True)
    task.margin(out, ds.targets[i : i + 1]).sum().backward()
    assert out.grad is not None and float(out.grad[:, : task.num_classes].min()) < 0  # raise a centre's heatmap


def test_detector_trains_and_the_loss_drops() -> None:
    ds = tiny(8)
    task = ds.task()
    model = detector(task)
    x, y, _ = ds.batch(torch.arange(8))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    with torch.no_grad():
        first = float(task.loss(model(x), y).mean())
    for _ in range(25):
        opt.zero_grad()
        loss = task.loss(model(x), y).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(task.loss(model(x), y).mean()) < 0.5 * first


def test_pgd_on_the_detection_loss_stays_in_the_ball_and_raises_the_loss() -> None:
    ds = tiny(6)
    task = ds.task()
    model = detector(task).eval()
    x, y, _ = ds.batch(torch.arange(6))
    eps = torch.tensor([0.0, 0.25, 0.5, 0.5, 1.0, 1.0])
    r = PGD(norm="l2", steps=5, random_start=False)(model, x, y, task=task, eps=eps)
    assert bool((norm_of(r.x_adv - x, "l2") <= eps + 1e-5).all())
    assert bool((task.loss(r.output, y) >= task.loss(model(x), y).detach() - 1e-6).all())
    with torch.no_grad():
        assert float(task.loss(r.output, y)[-1]) > float(task.loss(model(x), y)[-1])
    for loss in ("ce", "dlr"):  # DLR falls back to the task margin (detection has no class logits per sample)
        a = APGD(norm="l2", steps=4, loss=loss)(model, x, y, task=task, eps=eps, generator=torch.Generator())
        assert bool((norm_of(a.x_adv - x, "l2") <= eps + 1e-5).all())
        assert torch.equal(a.fooled, ~task.correct(model(a.x_adv), y))


def test_margins_refined_below_delta_are_floored_at_delta() -> None:
    m = Margins(3, delta=0.5)
    m.record(torch.arange(3), torch.ones(3, dtype=torch.bool), torch.tensor([True, True, False]),
             torch.tensor([0.0, 0.8, 0.0]))  # fmt: skip
    m.update(0.5, 10.0, floor=0.5)
    assert m.E.tolist() == pytest.approx([0.5, 0.65, 1.0])  # (0.5 + 0)/2 → floored at δ; (0.5 + 0.8)/2; expanded
    plain = Margins(1, delta=0.5)
    plain.record(torch.arange(1), torch.ones(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool), torch.zeros(1))
    plain.update(0.5, 10.0)
    assert plain.E.tolist() == [0.25]  # IMA's rule: no floor


def test_amat_uses_the_official_detection_rules() -> None:
    ds = tiny(8)
    task = ds.task()
    model = detector(task)
    method = amat(delta=0.5, e_max=2.0, steps=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # margins only: the model stays put
    hist = fit(model, method, ds, None, task=task, optimizer=opt, epochs=2, batch_size=4, progress=False)
    assert method.attack.alpha == DETECTION_ALPHA and method.schedule.refine_floor == "delta"
    assert all(r["adv_fraction"] == 1.0 for r in hist.records)  # every sample in the adversarial term
    assert float(method._state().E.min()) >= 0.5  # refined margins never fall below δ
    seg = amat()
    seg.setup(model, 4, data.load("phantom-ct-seg", "val", size=28, n=2, progress=False).task())
    assert seg.schedule.refine_floor == "zero" and seg.attack.alpha == 4.0


def test_cli_trains_amat_on_phantom_ct_det_and_evaluates_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    tiny_options = ["--set", "data.options={size: 32, n: 8}", "--set", "model.options={width: 4}", "--epochs", "1",
                    "--batch-size", "4", "--no-progress", "--threads", "1"]  # fmt: skip
    assert main(["train", "--dataset", "phantom-ct-det", "--model", "centernet", "--method", "amat",
                 "--set", "method.options={delta: 0.25, e_max: 1.0, steps: 2}", "--out", str(run),
                 *tiny_options]) == 0  # fmt: skip
    assert "map@0.5" in capsys.readouterr().out
    results = tmp_path / "results.json"
    assert main(["evaluate", str(run), "--json", str(results), "--attack", "pgd", "--norm", "l2", "--eps", "0,0.5",
                 "--steps", "2", "--no-progress", "--threads", "1"]) == 0  # fmt: skip
    doc = json.loads(results.read_text())
    assert {c["name"]: c["passed"] for c in doc["checks"]}["input_gradients"]  # lesion-free images too
    rows = doc["rows"]
    maps = {r["level"]: r["value"] for r in rows if r["metric"] == "map" and r["threat"] != "clean"}
    assert set(maps) == {0.0, 0.5} and all(0 <= v <= 1 for v in maps.values())


def test_gallery_draws_boxes_and_counts_lesions() -> None:
    from matplotlib.figure import Figure

    from medrobust.reporting.gallery import _overlay, _verdict

    ds = tiny(8)
    task = ds.task()
    i = int((ds.targets[..., 4] >= 0).any(dim=1).nonzero()[0])
    y = ds.targets[i : i + 1]
    out = perfect_output(task, y, 32)
    ax = Figure().subplots()
    _overlay(ax, task, out, y)
    assert len(ax.patches) == 2 * int((y[0, :, 4] >= 0).sum())  # true (cyan) and detected (red) boxes
    assert _verdict(task, out, y).endswith("✓")
