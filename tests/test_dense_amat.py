"""AMAT: the adaptive-margin algorithm with a Dice / loss predicate (one implementation with IMA)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medrobust.config import ExperimentConfig
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.errors import ConfigError
from medrobust.methods import METHODS
from medrobust.methods.adaptive_margin import IMA
from medrobust.methods.amat import LEGACY_OPTIONS, amat
from medrobust.methods.base import Batch, StepContext
from medrobust.methods.loss_threshold import LossPredicate
from medrobust.tasks import LandmarkTask, SegmentationTask
from medrobust.training import fit
from medrobust.training.runs import check_names


def two_pixel_data() -> ArrayDataset:
    """Images of two pixels (lesion, background). Sample 0: lesion 0.9 (segmented right, Dice 1);
    sample 1: lesion 0.3 (missed by the threshold model, Dice 0: wrong from the start)."""
    x = np.array([[[[0.9, 0.2]]], [[[0.3, 0.2]]]], np.float32)
    masks = np.array([[[1, 0]], [[1, 0]]], np.int64)
    return ArrayDataset(x, masks, DatasetInfo("two", "segmentation", 1, (1, 2), 2, ("bg", "lesion"), "train"))


def threshold_model() -> nn.Module:
    """Fixed 1×1 conv: lesion logit ``10·x − 5`` (lesion where x > 0.5), background logit 0."""
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 10.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -5.0]))
    return conv


def test_amat_is_ima_configured() -> None:
    m = METHODS.create("amat")
    assert type(m) is IMA and m.name == "amat"
    assert (m.search.stop, m.adv_mean, m.schedule.e_max) == ("final", "adversarial", float("inf"))
    with pytest.raises(ConfigError, match="alpah"):
        check_names(ExperimentConfig.from_dict({"method": {"name": "amat", "options": {"alpah": 5}}}))
    with pytest.raises(ConfigError, match="predicate"):
        METHODS.create("amat", predicate="dice")


@pytest.mark.parametrize("only_grow", [False, True])
def test_amat_margins_expand_only_while_the_predicate_holds(only_grow: bool) -> None:
    # Dice ≥ 0.9 breaks once the background pixel exceeds 0.5 (L2 distance 0.3) or the lesion pixel drops to
    # 0.5 (0.4): PGD at radius 0.25 cannot break it, at 0.5 it always does (any ascent direction of the loss).
    # medrobust's earlier AMAT (the strict τ on clean outputs too): sample 1, wrong on clean data, never moves.
    data, model = two_pixel_data(), threshold_model()
    method = amat(**LEGACY_OPTIONS, delta=0.25, tau=0.9, steps=10, only_grow=only_grow)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # the model stays fixed
    margins = []
    fit(model, method, data, None, task=data.task(), optimizer=opt, epochs=4, batch_size=2, progress=False,
        callbacks=(lambda r: margins.append(method._state().E.tolist()),))  # fmt: skip
    first = [e[0] for e in margins]
    assert first[0] == pytest.approx(0.5)  # epoch 1 at 0.25: predicate held → expanded
    assert all(b <= a + 1e-6 for a, b in itertools.pairwise(first))  # at 0.5 it flips: no more expansion
    if only_grow:
        assert first == pytest.approx([0.5] * 4)
    assert [e[1] for e in margins] == pytest.approx([0.25] * 4)  # wrong on clean data: never changes


def test_amat_adversarial_term_is_the_mean_over_adversarial_samples() -> None:
    data, model = two_pixel_data(), threshold_model()
    task = data.task()
    x, y, idx = data.batch(torch.arange(2))
    losses = {}
    legacy = amat(**LEGACY_OPTIONS, delta=0.6, tau=0.9, steps=10, beta=1.0)
    for method in (legacy, IMA.from_options(delta=0.6, beta=1.0, stop="final")):
        if method.name == "ima":
            method.tau = 0.9  # same predicate, IMA's /B averaging
        method.setup(model, 2, task)
        ctx = StepContext(task, 1, 0, torch.Generator().manual_seed(0), torch.device("cpu"))
        losses[method.name] = float(method.training_step(model, Batch(x, y, idx), ctx).loss.detach())
    # only sample 0 is clean-correct and flipped: AMAT averages over 1 sample, IMA over the batch of 2
    assert losses["amat"] == pytest.approx(2 * losses["ima"], rel=1e-4)


def test_amat_task_and_loss_predicates() -> None:
    task = SegmentationTask(tau=0.5)
    m = amat(tau=0.8)
    m.setup(threshold_model(), 2, task)
    assert m.task == SegmentationTask(tau=0.8)
    m = amat(predicate="loss", tau=0.3)
    m.setup(threshold_model(), 2, task)
    assert m.task == LossPredicate(task, 0.3)
    with pytest.raises(ConfigError, match="clean_run"):
        amat(predicate="loss").setup(threshold_model(), 2, task)
    landmark = amat(tau=3.0, only_grow=True)
    landmark.setup(threshold_model(), 2, LandmarkTask())
    assert landmark.task == LandmarkTask(tau=3.0)


def test_amat_derives_the_loss_threshold_from_a_clean_run(tmp_path: Path) -> None:
    from medrobust.config import ExperimentConfig
    from medrobust.methods.loss_threshold import loss_threshold, per_sample_losses
    from medrobust.training.runs import method_options, train_run

    cfg = ExperimentConfig.from_dict({
        "data": {"name": "phantom-ct-seg", "options": {"size": 28, "n": 6, "progress": False}},
        "model": {"name": "unet", "options": {"width": 4, "depth": 2}},
        "train": {"epochs": 1, "batch_size": 3, "progress": False, "device": "cpu"},
    })  # fmt: skip
    run, _ = train_run(cfg, tmp_path / "clean")
    train = run.dataset("train")
    want = loss_threshold(per_sample_losses(run.model, train, run.task).numpy(), z=2.0)
    amat_cfg = ExperimentConfig.from_dict({**cfg.to_dict(), "method": {
        "name": "amat", "options": {"predicate": "loss", "clean_run": str(tmp_path / "clean"), "z": 2.0}}})  # fmt: skip
    options = method_options(amat_cfg)
    assert options["tau"] == pytest.approx(want) and "clean_run" not in options and "z" not in options
    m = amat(**options)
    m.setup(threshold_model(), len(train), run.task)
    assert isinstance(m.task, LossPredicate) and m.task.tau == pytest.approx(want)
    with pytest.raises(ConfigError, match="not both"):
        method_options(ExperimentConfig.from_dict({**amat_cfg.to_dict(), "method": {
            "name": "amat", "options": {"tau": 0.1, "clean_run": str(tmp_path / "clean")}}}))  # fmt: skip
    with pytest.raises(ConfigError, match="z needs clean_run"):
        method_options(ExperimentConfig.from_dict({**amat_cfg.to_dict(), "method": {
            "name": "amat", "options": {"tau": 0.1, "z": 2}}}))  # fmt: skip


def amat_epochs(method: IMA, epochs: int) -> tuple[list[list[float]], list[dict]]:
    """Margins after each epoch of ``method`` on the fixed two-pixel model, and the history records."""
    data, model = two_pixel_data(), threshold_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    margins: list[list[float]] = []
    hist = fit(model, method, data, None, task=data.task(), optimizer=opt, epochs=epochs, batch_size=2,
               progress=False, callbacks=(lambda r: margins.append(method._state().E.tolist()),))  # fmt: skip
    return margins, hist.records


def test_official_amat_adversarial_term_is_the_mean_over_every_samples_final_point() -> None:
    data, model = two_pixel_data(), threshold_model()
    task = data.task()
    x, y, idx = data.batch(torch.arange(2))
    method = amat(delta=0.6, tau=0.9, steps=10, beta=1.0)
    method.setup(model, 2, task)
    inputs: list[torch.Tensor] = []
    model.register_forward_hook(lambda _m, i, _o: inputs.append(i[0].detach().clone()))
    ctx = StepContext(task, 1, 0, torch.Generator().manual_seed(0), torch.device("cpu"))
    loss = float(method.training_step(model, Batch(x, y, idx), ctx).loss.detach())
    final = inputs[-1]  # the adversarial forward: both samples' final PGD points
    assert final.shape == x.shape and not torch.equal(final, x)
    assert float((final - x).flatten(1).norm(dim=1).max()) <= 0.6 + 1e-6
    # sample 1 (Dice 0 on clean data, below τ) counts too: the mean over both samples, not over the flipped one
    with torch.no_grad():
        assert loss == pytest.approx(float(task.loss(model(final), y).mean()), rel=1e-5)


def test_official_amat_strict_tau_decides_only_the_margin_updates() -> None:
    # permissive clean predicate (Dice ≥ 0): sample 1, below τ on clean data, counts as clean-correct and is
    # "flipped" (strict τ) at every radius, so it is refined every epoch (E = mean of E_new and its final PGD
    # distance); sample 0 expands while τ holds. The earlier AMAT never refined sample 1 (wrong on clean data).
    official, rec = amat_epochs(amat(delta=0.25, tau=0.9, steps=10), 2)
    legacy, rec_legacy = amat_epochs(amat(**LEGACY_OPTIONS, delta=0.25, tau=0.9, steps=10), 2)
    assert official[0][0] == pytest.approx(0.5) and legacy[0][0] == pytest.approx(0.5)
    assert [r["margin_refined"] for r in rec] == [0.5, 1.0]  # epoch 2: sample 0 flips at 0.5 too
    assert [r["margin_refined"] for r in rec_legacy] == [0.0, 0.5]
    assert 0.125 <= official[1][1] <= 0.25 and legacy[1][1] == pytest.approx(0.25)
    _, rec_tau = amat_epochs(amat(delta=0.25, tau=0.9, clean_tau=0.5, steps=10), 1)
    assert rec_tau[0]["margin_refined"] == 0.0  # a clean threshold of its own (Dice ≥ 0.5): sample 1 left alone


def test_official_amat_start_radius_and_landmark_alpha() -> None:
    data, model = two_pixel_data(), threshold_model()
    task = data.task()
    x, y, _ = data.batch(torch.arange(2))
    eps = torch.tensor([0.05, 0.3])
    radii = {}
    for key, options in (("official", {}), ("legacy", LEGACY_OPTIONS)):
        method = amat(**{**options, "delta": 0.1, "steps": 1, "alpha": 1e-6})  # the start is the final point
        method.setup(model, 2, task)
        ok = torch.ones(2, dtype=torch.bool)
        x_adv, _ = method.perturb(model, x, y, eps, ok, task, torch.Generator().manual_seed(0))
        radii[key] = (x_adv - x).flatten(1).norm(dim=1)
    # min(max(E − δ, δ), E) (nnUNetTrainerV2.py L450): 0.05 → 0.05 (capped at E), 0.3 → 0.2; earlier: E
    assert radii["official"].tolist() == pytest.approx([0.05, 0.2], abs=1e-4)
    assert radii["legacy"].tolist() == pytest.approx([0.05, 0.3], abs=1e-4)
    landmark, seg = amat(), amat()
    landmark.setup(threshold_model(), 2, LandmarkTask())
    seg.setup(threshold_model(), 2, SegmentationTask())
    assert (landmark.attack.alpha, seg.attack.alpha, amat(alpha=3.0).attack.alpha) == (5.0, 4.0, 3.0)
