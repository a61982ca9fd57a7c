import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import blobs
from medrobust import models
from medrobust.errors import ConfigError, DataError
from medrobust.geometry import SampleDraws
from medrobust.methods import METHODS, Batch, EpochContext, StepContext
from medrobust.methods.adaptive_margin import IMA, Margins
from medrobust.methods.margin_attack import Tracked, adversarial_point, soft_margin, start_point, tracked_pgd
from medrobust.methods.margin_report import accuracy_from_margins
from medrobust.tasks.classification import ClassificationTask
from medrobust.training.loop import fit

BINARY = ClassificationTask(kind="binary")


class Threshold(nn.Module):
    """One logit ``4·(x₀ − 0.5)`` of a ``(N, 1, 2, 2)`` image: class 1 iff the first pixel exceeds 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[4.0, 0.0, 0.0, 0.0]]))
            self.fc.bias.fill_(-2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def images(first: list[float]) -> torch.Tensor:
    x = torch.full((len(first), 1, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor(first)
    return x


def ctx(task: ClassificationTask = BINARY, seed: int = 0) -> StepContext:
    return StepContext(task, 1, 0, torch.Generator().manual_seed(seed), torch.device("cpu"))


def test_margins_expand_refine_misclassified_and_clamp() -> None:
    m = Margins(5, delta=0.5)
    m.E = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.9])
    m.begin_epoch()
    index = torch.tensor([0, 1, 2, 4])
    ok = torch.tensor([True, True, False, True])
    flipped = torch.tensor([False, True, True, False])
    m.record(index, ok, flipped, torch.tensor([9.0, 0.4, 0.1, 9.0]))
    assert m.E_new.tolist() == pytest.approx([1.0, 0.7, 1.0, 1.0, 2.9])  # only clean-correct & flipped average
    grown, refined = m.update(delta=0.5, e_max=3.0)
    # expand / refine / misclassified unchanged / unseen unchanged / expanded then clamped to e_max
    assert m.E.tolist() == pytest.approx([1.5, 0.7, 1.0, 1.0, 3.0])
    assert grown.tolist() == [True, False, False, False, True]
    assert refined.tolist() == [False, True, False, False, False]
    grown, _ = Margins(1, 0.5).update(0.5, 3.0)  # nothing seen: nothing changes
    assert not grown.any()


def test_bisection_returns_last_correct_or_midpoint_on_a_known_boundary() -> None:
    model, y = Threshold(), torch.tensor([1, 1, 1])
    x = images([0.7, 0.7, 0.7])
    final = images([0.2, 0.8, 0.2])  # the middle sample's final iterate is back on the correct side
    first_wrong = images([0.3, 0.3, 0.3])
    tracked = Tracked(
        final, images([0.55, 0.55, 0.55]), first_wrong, torch.tensor([3, 1, 2]), torch.tensor([False, True, False])
    )
    select = torch.tensor([True, True, False])
    # medrobust's earlier rules, kept as options: only the selected samples, far end = first wrong iterate
    kw = {"task": BINARY, "steps": 10, "train_mode": False, "far_end": "first_wrong", "batch": "subset"}
    last = adversarial_point(model, x, y, tracked, select, stop="last_correct", **kw)
    mid = adversarial_point(model, x, y, tracked, select, stop="midpoint", **kw)
    assert torch.equal(last[2], final[2]) and torch.equal(mid[2], final[2])  # not selected: final iterate
    assert bool(BINARY.correct(model(last[:2]), y[:2]).all())
    # tolerance: segment length / 2^steps; sample 1 bisects x → first wrong iterate (length 0.4)
    tol0, tol1 = 0.5 / 2**10 + 1e-6, 0.4 / 2**10 + 1e-6
    assert 0.5 < float(last[0, 0, 0, 0]) <= 0.5 + tol0 and 0.5 < float(last[1, 0, 0, 0]) <= 0.5 + tol1
    assert torch.allclose(mid[0] - last[0], (final[0] - x[0]) / 2**11, atol=1e-7)
    assert torch.allclose(mid[1] - last[1], (first_wrong[1] - x[1]) / 2**11, atol=1e-7)
    it = adversarial_point(model, x, y, tracked, select, stop="last_correct", bracket="iterates", **kw)
    assert 0.5 < float(it[0, 0, 0, 0]) <= 0.5 + 0.25 / 2**10 + 1e-6  # segment 0.55 → 0.3
    assert torch.equal(adversarial_point(model, x, y, tracked, select, stop="final", **kw), final)


def test_official_search_bisects_the_whole_batch_toward_the_final_iterate() -> None:
    model, y = Threshold(), torch.tensor([1, 1, 1])
    x = images([0.7, 0.7, 0.7])
    final = images([0.2, 0.8, 0.2])  # sample 1 flipped once, then its final iterate is correct again
    tracked = Tracked(
        final, images([0.55] * 3), images([0.3] * 3), torch.tensor([3, 1, 2]), torch.tensor([False, True, False])
    )
    select = torch.tensor([True, True, False])
    sizes: list[int] = []
    model.register_forward_hook(lambda _m, inputs, _o: sizes.append(len(inputs[0])))
    point = adversarial_point(model, x, y, tracked, select, task=BINARY, steps=10, train_mode=False)
    assert sizes == [3] * 10  # every halving forwards the whole batch (RobustDNN_IMA_bn.py L249-260)
    tol = 0.5 / 2**10 + 1e-6
    assert 0.5 < float(point[0, 0, 0, 0]) <= 0.5 + tol and 0.5 < float(point[2, 0, 0, 0]) <= 0.5 + tol
    # far end = the final iterate (Xn2_equal_Xn): the segment 0.7 → 0.8 is correct throughout, so the search
    # ends next to the final iterate (distance ≈ E) instead of at the boundary before the first wrong iterate
    assert 0.8 - 0.1 / 2**10 - 1e-6 <= float(point[1, 0, 0, 0]) < 0.8
    sizes.clear()
    adversarial_point(model, x, y, tracked, select, task=BINARY, steps=10, train_mode=False, batch="subset")
    assert sizes == [2] * 10
    none = torch.zeros(3, dtype=torch.bool)
    unflipped = Tracked(final, x, x, torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.bool))
    assert torch.equal(adversarial_point(model, x, y, unflipped, none, task=BINARY), final)  # nothing flipped


def test_full_batch_step_forwards_every_adversarial_point_and_subset_only_the_flipped() -> None:
    sizes: dict[str, list[int]] = {}
    for batch in ("full", "subset"):
        model = Threshold()
        ima = IMA.from_options(delta=0.1, e_max=0.35, search_batch=batch)  # type: ignore[arg-type]
        ima.setup(model, 6, BINARY)
        assert ima.margins is not None
        ima.margins.E = torch.tensor([0.2, 0.1, 0.25, 0.3, 0.25, 0.3])
        ima.margins.begin_epoch()
        seen: list[int] = []
        model.register_forward_hook(lambda _m, inputs, _o, s=seen: s.append(len(inputs[0])))
        batch_ = Batch(images([0.1, 0.9, 0.6, 0.4]), torch.tensor([0, 1, 1, 1]), torch.tensor([3, 1, 0, 5]))
        ima.training_step(model, batch_, ctx())
        sizes[batch] = seen
    # clean forward, 21 PGD iterates, 10 halvings, adversarial forward
    assert sizes["full"] == [4] * 33
    assert sizes["subset"] == [4] * 22 + [1] * 11  # only dataset index 0 is clean-correct and flipped


def test_attack_and_search_run_in_fp32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    base = models.create("small_cnn", in_channels=1, num_outputs=1, width=4, norm="none")
    x, y, idx = blobs(16).batch(torch.arange(16))
    opt = torch.optim.Adam(base.parameters(), lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        BINARY.loss(base(x), y).mean().backward()
        opt.step()
    results = []
    for amp in (False, True):
        model = copy.deepcopy(base)
        ima = IMA.from_options(delta=0.01, e_max=3.0, steps=10)
        ima.setup(model, 16, BINARY)
        assert ima.margins is not None
        ima.margins.E = torch.linspace(0.01, 2.0, 16)
        ima.margins.begin_epoch()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = ima.training_step(model, Batch(x, y, idx), ctx(seed=3))
        assert out.output is not None
        results.append((BINARY.correct(out.output.float(), y), ima.margins.flipped.clone(), ima.margins.E_new.clone()))
    (ok32, flip32, e32), (ok16, flip16, e16) = results
    assert torch.equal(ok32, ok16)  # the clean decisions agree, so the margins must too
    assert int((ok32 & flip32).sum()) > 0 and torch.equal(flip32, flip16)
    assert torch.equal(e32, e16)


def test_tracked_pgd_records_iterates_around_the_first_flip() -> None:
    model, x, y = Threshold(), images([0.6, 0.95]), torch.tensor([1, 1])
    eps = torch.tensor([0.3, 0.3])
    t = tracked_pgd(
        model,
        x,
        y,
        task=BINARY,
        eps=eps,
        norm="l2",
        steps=20,
        step_size=eps * 4 / 20,
        generator=torch.Generator().manual_seed(0),
    )
    assert t.flips[1] == 0 and 1 <= t.flips[0] <= 21  # 0.45 from the boundary vs 0.1
    assert torch.equal(t.last_correct[1], t.final[1]) and not t.final_correct[0]
    assert BINARY.correct(model(t.last_correct[:1]), y[:1]).item()
    assert not BINARY.correct(model(t.first_wrong[:1]), y[:1]).item()
    assert float((t.final - x).flatten(1).norm(dim=1).max()) <= 0.3 + 1e-6


def test_training_step_loss_weighting_and_margin_bookkeeping() -> None:
    model = Threshold()
    ima = IMA.from_options(delta=0.1, e_max=0.35, beta=0.5)
    ima.setup(model, 6, BINARY)
    assert ima.margins is not None
    ima.margins.E = torch.tensor([0.2, 0.1, 0.25, 0.3, 0.25, 0.3])
    ima.margins.begin_epoch()
    # dataset index 3: far (never flips, expands, then clamps); 0: near (flips, refined); 5: misclassified;
    # 1: far from the boundary (expands)
    batch = Batch(images([0.1, 0.9, 0.6, 0.4]), torch.tensor([0, 1, 1, 1]), torch.tensor([3, 1, 0, 5]))
    out = ima.training_step(model, batch, ctx())
    clean_ce = BINARY.loss(model(batch.x), batch.target).mean().detach()
    # A = {index 0} only; its point is on the boundary (logit ≈ 0), so its loss ≈ ln 2, divided by B = 4
    assert float(out.loss.detach()) == pytest.approx(0.5 * float(clean_ce) + 0.5 * math.log(2) / 4, abs=1e-3)
    assert out.logs["adv_fraction"] == 0.25
    distance = 2 * float(ima.margins.E_new[0]) - 0.2
    assert 0.1 <= distance <= 0.2  # the boundary point lies between 0.1 (closest) and the radius
    logs = ima.on_epoch_end(EpochContext(1, None, BINARY))
    assert ima.margins.E.tolist() == pytest.approx([(0.2 + distance) / 2, 0.2, 0.25, 0.35, 0.25, 0.3])
    assert logs["margin_expanded"] == 0.5 and logs["margin_refined"] == 0.25  # index 3 grew 0.3 → 0.35
    assert logs["margin_acc@0"] == 0.75  # one of the four seen samples is misclassified


def test_illinois_refinement_finds_the_bisection_boundary_with_fewer_forwards() -> None:
    calls = {"bisection": 0, "illinois": 0}
    distances = {}
    for refine in calls:
        model = Threshold()
        model.register_forward_hook(lambda *_, r=refine: calls.__setitem__(r, calls[r] + 1))
        ima = IMA.from_options(delta=0.1, e_max=0.35, refine=refine)  # type: ignore[arg-type]
        ima.setup(model, 6, BINARY)
        assert ima.margins is not None
        ima.margins.E = torch.tensor([0.2, 0.1, 0.25, 0.3, 0.25, 0.3])
        ima.margins.begin_epoch()
        batch = Batch(images([0.1, 0.9, 0.6, 0.4]), torch.tensor([0, 1, 1, 1]), torch.tensor([3, 1, 0, 5]))
        ima.training_step(model, batch, ctx())
        distances[refine] = float(ima.margins.E_new[0])
    assert distances["illinois"] == pytest.approx(distances["bisection"], abs=1e-3)
    assert calls["bisection"] - calls["illinois"] == 10 - 4  # same attack, 4 Illinois steps instead of 10 halvings


def test_loss_grads_do_not_include_the_attack() -> None:
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4, norm="none")
    x, y, idx = blobs(16).batch(torch.arange(16))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):  # a model with a real decision boundary, so that some samples flip
        opt.zero_grad()
        BINARY.loss(model(x), y).mean().backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    ima = IMA.from_options(delta=2.0, steps=5)
    ima.setup(model, 16, BINARY)
    out = ima.training_step(model, Batch(x, y, idx), dataclasses.replace(ctx(), seed=7))
    early = [p.grad.clone() for p in model.parameters()]  # the clean term, backpropagated before the attack
    out.backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    (0.5 * BINARY.loss(model(x), y).mean()).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(early, model.parameters()))  # no attack leak
    model.zero_grad()
    clean = model(x)
    ok = BINARY.correct(clean, y)
    starts = SampleDraws.of(7, 1, idx)  # training_step's per-sample starts (run seed, epoch 1, index)
    x_adv, flipped = ima.perturb(model, x, y, torch.full((16,), 2.0), ok, BINARY, starts)
    use = ok & flipped
    assert 0 < int(use.sum()) < 16
    adv = torch.where(use, BINARY.loss(model(x_adv), y), torch.zeros(16)).sum() / 16
    (0.5 * BINARY.loss(clean, y).mean() + 0.5 * adv).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(got, model.parameters()))


def run(out: Path, epochs: int, resume: bool = False, **options: object) -> tuple[nn.Module, IMA, list[dict]]:
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
    method = METHODS.create("ima", **{"delta": 0.05, "e_max": 1.0, "steps": 3, **options})
    assert isinstance(method, IMA)
    train = blobs(48)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    hist = fit(
        model,
        method,
        train,
        None,
        task=train.task(),
        optimizer=opt,
        epochs=epochs,
        batch_size=16,
        run_dir=out,
        resume=resume,
        seed=1,
        progress=False,
    )
    return model, method, hist.records


def test_exact_resume_with_margins_and_epoch_outputs(tmp_path: Path) -> None:
    full, m_full, rec_full = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    resumed, m_res, rec_res = run(tmp_path / "b", 3, resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert m_full.margins is not None and m_res.margins is not None
    assert torch.equal(m_full.margins.E, m_res.margins.E)
    assert rec_full[2]["margin_mean"] == rec_res[2]["margin_mean"]
    assert {"margin_q10", "margin_q50", "margin_q90", "margin_expanded", "margin_refined", "margin_acc@0.5"} <= set(
        rec_full[0]
    )
    assert sorted(p.name for p in (tmp_path / "a").glob("margins_epoch*.png")) == [
        f"margins_epoch{i:03d}.png" for i in (1, 2, 3)
    ]
    saved = np.load(tmp_path / "a" / "margins_epoch003.npz")
    assert np.array_equal(saved["margins"], m_full.margins.E.numpy()) and saved["correct"].dtype == bool


def test_margin_stable_signal(tmp_path: Path) -> None:
    # e_max = delta, too small to flip anything: no margin can grow or shrink
    _, _, records = run(tmp_path, 2, delta=1e-4, e_max=1e-4, margin_stable_epochs=2)
    assert [r["margin_stable"] for r in records] == [0.0, 1.0]
    assert records[1]["margin_epochs_without_expansion"] == 2.0


def test_soft_margin_and_accuracy_from_margins() -> None:
    z = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 0])
    expected = torch.logsumexp(z[:, 1:], dim=1) - z[:, 0]
    assert torch.allclose(soft_margin(ClassificationTask(num_classes=3), z, y), expected)
    assert soft_margin(BINARY, torch.tensor([[1.5], [1.5]]), torch.tensor([1, 0])).tolist() == [-1.5, 1.5]
    acc = accuracy_from_margins(
        torch.tensor([0.0, 0.5, 2.0, 5.0]), torch.tensor([True, True, True, False]), [0, 0.5, 1]
    )
    assert acc == [0.75, 0.5, 0.25]


def test_bad_options_and_checkpoints_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="stop"):
        IMA.from_options(stop="boundary")
    with pytest.raises(ConfigError, match="beta"):
        IMA.from_options(beta=1.5)
    ima = IMA.from_options()
    ima.setup(Threshold(), 4, BINARY)
    with pytest.raises(DataError, match="same training data"):
        ima.load_state_dict({"margins": torch.zeros(5)})


def test_a_samples_start_depends_on_seed_epoch_and_index_not_on_its_batch() -> None:
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    eps = torch.full((6,), 0.5)
    index = torch.tensor([10, 11, 12, 13, 14, 15])
    whole = tracked_pgd_start(x, eps, SampleDraws.of(3, 2, index))
    order = torch.tensor([4, 0, 5])  # another batch: three of the samples, in another order
    part = tracked_pgd_start(x[order], eps[order], SampleDraws.of(3, 2, index[order]))
    assert torch.equal(part, whole[order])
    assert not torch.equal(whole, tracked_pgd_start(x, eps, SampleDraws.of(3, 3, index)))  # a new epoch: new starts
    assert not torch.equal(whole, tracked_pgd_start(x, eps, SampleDraws.of(4, 2, index)))  # another run seed
    for start in ("sphere", "ball"):
        d = tracked_pgd_start(x, eps, SampleDraws.of(3, 2, index), start) - x
        assert float(d.flatten(1).norm(dim=1).max()) <= 0.5 + 1e-6 and float(d.abs().sum()) > 0


def tracked_pgd_start(x: torch.Tensor, eps: torch.Tensor, draws: SampleDraws, start: str = "sphere") -> torch.Tensor:
    return start_point(x, eps, "l2", start, draws)  # type: ignore[arg-type]
