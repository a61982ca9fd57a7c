"""Segmentation and landmark tasks and metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.errors import ConfigError, DataError
from medrobust.metrics import landmark as L
from medrobust.metrics import segmentation as S
from medrobust.tasks import LandmarkTask, SegmentationTask, task_from_dict


def logits_of(labels: torch.Tensor, k: int, scale: float = 10.0) -> torch.Tensor:
    """Logits whose argmax is ``labels`` (N, H, W) → (N, K, H, W)."""
    return scale * torch.nn.functional.one_hot(labels, k).movedim(-1, 1).float()


PRED = torch.tensor([[[1, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0]], [[1, 1, 1], [1, 0, 0]]])
TRUE = torch.tensor([[[1, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 0, 0]], [[1, 1, 0], [0, 0, 0]]])


def test_dice_hand_computed() -> None:
    # sample 0: |P∩G| = 1, |P| = 2, |G| = 2 → 0.5; sample 1: both empty → 1; sample 2: 2·2/(4+2) = 2/3
    d = S.dice_per_sample(PRED, TRUE, 2)
    assert torch.allclose(d, torch.tensor([0.5, 1.0, 2 / 3], dtype=torch.float64))
    # total: Σ|P∩G| = 3, Σ|P| = 6, Σ|G| = 4 → 0.6
    assert S.total_dice(PRED, TRUE, 2) == pytest.approx(0.6)


def test_dice_matches_sklearn_f1() -> None:
    rng = np.random.default_rng(0)
    p, g = rng.integers(0, 2, (5, 8, 8)), rng.integers(0, 2, (5, 8, 8))
    d = S.dice_per_sample(torch.from_numpy(p), torch.from_numpy(g), 2).numpy()
    ref = [f1_score(g[i].ravel(), p[i].ravel()) for i in range(5)]
    assert np.allclose(d, ref)
    assert S.total_dice(torch.from_numpy(p), torch.from_numpy(g), 2) == pytest.approx(f1_score(g.ravel(), p.ravel()))


def test_multiclass_dice_mean_and_max() -> None:
    g = torch.tensor([[[1, 1, 2, 2]]])
    p = torch.tensor([[[1, 1, 0, 0]]])  # class 1 perfect, class 2 missed
    assert S.dice_per_class(p, g, 3).tolist() == [[1.0, 0.0]]
    assert float(S.dice_per_sample(p, g, 3, "mean")) == 0.5
    assert float(S.dice_per_sample(p, g, 3, "max")) == 1.0


def test_soft_dice_of_one_hot_is_hard_dice() -> None:
    probs = torch.nn.functional.one_hot(PRED, 2).movedim(-1, 1).double()
    assert torch.allclose(S.soft_dice(probs, TRUE, smooth=1e-9), S.dice_per_sample(PRED, TRUE, 2), atol=1e-6)


def test_segmentation_task_predicate_margin_and_metrics() -> None:
    task = SegmentationTask(num_classes=2, tau=0.6)
    out = logits_of(PRED, 2).requires_grad_(True)
    assert task.correct(out, TRUE).tolist() == [False, True, True]  # Dice 0.5, 1, 0.667 vs τ = 0.6
    m = task.margin(out, TRUE)
    assert torch.allclose(m.detach(), torch.tensor([0.1, -0.4, 0.6 - 2 / 3]), atol=1e-6)
    assert ((m > 0) == ~task.correct(out, TRUE)).all()
    (grad,) = torch.autograd.grad(m.sum(), out)
    assert grad[0].abs().sum() > 0  # the straight-through soft Dice gives the attack a direction
    metrics = task.metrics(out.detach(), TRUE)
    assert metrics["dice"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert metrics["dice_total"] == pytest.approx(0.6)
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def test_segmentation_loss_is_per_sample_and_small_when_right() -> None:
    task = SegmentationTask()
    out = logits_of(TRUE, 2, scale=20.0)
    loss = task.loss(out, TRUE)
    assert loss.shape == (3,) and float(loss.max()) < 0.05
    other = out.clone()
    other[1] = -other[1]  # sample 1 only
    changed = task.loss(other, TRUE)
    assert torch.allclose(changed[[0, 2]], loss[[0, 2]]) and changed[1] > loss[1] + 1


def test_segmentation_checks() -> None:
    task = SegmentationTask(num_classes=2)
    with pytest.raises(DataError, match="out of range"):
        task.check_target(torch.tensor([[[0, 2]]]))
    with pytest.raises(DataError, match="expected"):
        task.loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match="tau"):
        SegmentationTask(tau=1.5)


def test_radial_errors_mre_sdr_hand_computed() -> None:
    pred = torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[2.0, 2.0], [5.0, 5.0]]])
    true = torch.tensor([[[3.0, 4.0], [1.0, 1.0]], [[2.0, 3.0], [5.0, 7.5]]])
    e = L.radial_errors(pred, true)
    assert e.tolist() == [[5.0, 0.0], [1.0, 2.5]]
    m = L.landmark_metrics(e, (1.0, 2.5, 4.0))
    assert m["mre"] == pytest.approx(2.125)
    assert (m["sdr@1"], m["sdr@2.5"], m["sdr@4"]) == (0.5, 0.75, 0.75)
    assert L.radial_errors(pred, true, spacing=2.0)[0, 0] == 10.0


def test_landmark_decode_subpixel_and_integer_peaks() -> None:
    task = LandmarkTask(num_landmarks=2, sigma=1.5)
    true = torch.tensor([[[10.3, 20.0], [5.0, 7.0]]])
    pos = task.decode(task.heatmaps(true, (32, 32)))
    assert torch.allclose(pos[0, 0], true[0, 0], atol=0.1)  # sub-pixel: within 0.1 px of 10.3
    assert torch.allclose(pos[0, 1], true[0, 1], atol=1e-3)
    corner = torch.zeros(1, 2, 8, 8)
    corner[0, :, 0, 0] = 1.0  # peak on the border: the padding gets no weight
    assert torch.allclose(task.decode(corner)[0], torch.zeros(2, 2), atol=1e-3)


def test_landmark_task_predicate_margin_metrics() -> None:
    task = LandmarkTask(num_landmarks=1, tau=2.0, radii=(1.0, 3.0))
    true = torch.tensor([[[10.0, 10.0]], [[10.0, 10.0]]])
    guess = torch.tensor([[[10.0, 11.0]], [[10.0, 13.0]]])  # errors 1 and 3 px
    out = task.heatmaps(guess, (24, 24)).requires_grad_(True)
    assert task.correct(out, true).tolist() == [True, False]
    m = task.margin(out, true)
    assert torch.allclose(m.detach(), torch.tensor([-1.0, 1.0]), atol=1e-3)
    (grad,) = torch.autograd.grad(m.sum(), out)
    assert grad.abs().sum() > 0
    metrics = task.metrics(out.detach(), true)
    assert metrics["mre"] == pytest.approx(2.0, abs=1e-3)
    assert (metrics["sdr@1"], metrics["sdr@3"], metrics["accuracy"]) == (0.5, 1.0, 0.5)
    loss = task.loss(task.heatmaps(true, (24, 24)), true)
    assert torch.allclose(loss, torch.zeros(2), atol=1e-6)


def test_task_roundtrip_through_dict() -> None:
    import dataclasses

    for task in (SegmentationTask(num_classes=3, tau=0.8), LandmarkTask(num_landmarks=2, radii=(2.0, 4.0))):
        assert task_from_dict(dataclasses.asdict(task)) == task


def test_array_dataset_dense_targets() -> None:
    x = np.zeros((2, 1, 4, 4), np.uint8)
    seg = ArrayDataset(x, np.zeros((2, 4, 4), np.uint8), DatasetInfo("s", "segmentation", 1, (4, 4), 2, (), "train"))
    assert seg.targets.dtype == torch.long and isinstance(seg.task(), SegmentationTask)
    info = DatasetInfo("l", "landmark", 1, (4, 4), 1, ("a",), "train", {"task": {"tau": 3.0}})
    lm = ArrayDataset(x, np.full((2, 1, 2), 1.5, np.float32), info)
    assert lm.targets.dtype == torch.float32 and lm.task() == LandmarkTask(num_landmarks=1, class_names=("a",), tau=3.0)
    with pytest.raises(DataError, match="mask labels"):
        ArrayDataset(x, np.full((2, 4, 4), 2, np.uint8), DatasetInfo("s", "segmentation", 1, (4, 4), 2, (), "train"))
    with pytest.raises(DataError, match="NaN"):
        ArrayDataset(x, np.full((2, 1, 2), np.nan, np.float32), info)
