import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import blobs
from medrobust import models
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.errors import ConfigError
from medrobust.geometry import random_start
from medrobust.methods import METHODS, Batch, StepContext
from medrobust.methods.fast_at import FastAdversarialTraining
from medrobust.methods.fgsm_aug import FGSMAugmentation
from medrobust.methods.pgd_at import PGDAdversarialTraining
from medrobust.methods.trades import TRADES, kl_divergence, log_distribution
from medrobust.tasks.classification import ClassificationTask
from medrobust.training.loop import fit

BINARY = ClassificationTask(kind="binary")
ADVERSARIAL = ["pgd_at", "fgsm_aug", "trades", "fast_at", "ima"]


def three_class(n: int = 48, size: int = 8) -> ArrayDataset:
    """Class 0: dark; class 1: bright centre; class 2: bright top-left corner."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.uniform(0.0, 0.3, size=(n, 1, size, size)).astype(np.float32)
    x[y == 1, :, 2:6, 2:6] += 0.6
    x[y == 2, :, :3, :3] += 0.6
    info = DatasetInfo("three", "multiclass", 1, (size, size), 3, ("a", "b", "c"), "train")
    return ArrayDataset(np.clip(x, 0, 1), y.astype(np.int64), info)


def ctx(task: ClassificationTask = BINARY, seed: int = 0) -> StepContext:
    return StepContext(task, 1, 0, torch.Generator().manual_seed(seed), torch.device("cpu"))


def cnn(outputs: int = 1, norm: str = "batch") -> nn.Module:
    torch.manual_seed(0)
    return models.create("small_cnn", in_channels=1, num_outputs=outputs, width=4, norm=norm)


def batch_of(data: ArrayDataset, n: int = 16) -> Batch:
    return Batch(*data.batch(torch.arange(n)))


@pytest.mark.parametrize("name", ADVERSARIAL)
@pytest.mark.parametrize("data", [blobs(32), three_class(30)], ids=["one-logit", "3-class"])
def test_every_method_trains_one_epoch(name: str, data: ArrayDataset) -> None:
    task = data.task()
    model = cnn(task.output_dim)
    method = METHODS.create(name, **({"steps": 2} if name in ("pgd_at", "trades", "ima") else {}))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = [p.detach().clone() for p in model.parameters()]
    record = fit(model, method, data, None, task=task, optimizer=opt, epochs=1, batch_size=16, progress=False).last()
    assert math.isfinite(record["train_loss"])
    accuracy = record.get("train_accuracy", record.get("adv_accuracy"))  # adversarial-only methods log the latter
    assert accuracy is not None and 0 <= accuracy <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_at_perturbations_stay_within_eps(norm: str) -> None:
    eps = 0.03 if norm == "linf" else 0.5
    method = PGDAdversarialTraining(eps=eps, norm=norm)  # type: ignore[arg-type]
    batch = batch_of(blobs(16))
    x_adv, fooled = method.perturb(cnn(), batch, ctx())
    d = (x_adv - batch.x).flatten(1)
    size = d.abs().amax(dim=1) if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-6 and float(size.max()) > eps / 2
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1 and fooled.shape == (16,)


def test_pgd_at_mixes_clean_and_adversarial_losses() -> None:
    model, batch = cnn(norm="none"), batch_of(blobs(16))
    out = PGDAdversarialTraining(eps=0.05, adv_weight=0.25).training_step(model, batch, ctx(seed=3))
    x_adv, _ = PGDAdversarialTraining(eps=0.05).perturb(model, batch, ctx(seed=3))
    with torch.no_grad():
        clean, adv = BINARY.loss(model(batch.x), batch.target), BINARY.loss(model(x_adv), batch.target)
    assert float(out.loss.detach()) == pytest.approx(float(0.75 * clean.mean() + 0.25 * adv.mean()), rel=1e-5)


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_fgsm_aug_perturbs_exactly_round_p_n_samples_per_epoch(mode: str) -> None:
    data, model = blobs(40), cnn()
    method = FGSMAugmentation(eps=0.1, percentage=12.5, mode=mode)  # round(0.125 · 40) = 5 per epoch
    method.setup(model, len(data), BINARY)
    assert method.count(40) == 5
    generator = torch.Generator().manual_seed(0)
    selections = []
    for epoch in (1, 2):
        c = StepContext(BINARY, epoch, 0, generator, torch.device("cpu"))
        total = 0
        for part in (torch.arange(0, 20), torch.arange(20, 40)):  # two batches of 20: the selection spans both
            batch = Batch(*data.batch(part))
            x, y = method.perturb(model, batch, c)
            chosen = method.selected[part]
            if mode == "replace":
                changed = (x != batch.x).flatten(1).any(dim=1)
                assert torch.equal(changed, chosen) and torch.equal(y, batch.target)
                if chosen.any():
                    assert float((x - batch.x).abs().max()) == pytest.approx(0.1, abs=1e-6)
            else:
                k = int(chosen.sum())
                assert x.shape[0] == 20 + k and torch.equal(x[:20], batch.x)
                assert torch.equal(x[20:] - batch.x[chosen], (x[20:] - batch.x[chosen]).clamp(-0.1 - 1e-6, 0.1 + 1e-6))
                assert y[20:].tolist() == batch.target[chosen].tolist()
            total += int(chosen.sum())
        assert total == 5
        selections.append(method.selected.clone())
    assert not torch.equal(selections[0], selections[1])  # a fresh draw each epoch
    with pytest.raises(ConfigError, match="percent"):
        FGSMAugmentation(percentage=150)


def test_trades_loss_is_ce_plus_nonnegative_kl() -> None:
    model, batch = cnn(), batch_of(blobs(16))
    for beta in (0.0, 6.0):
        out = TRADES(beta=beta, steps=3).training_step(model, batch, ctx())
        ce = float(BINARY.loss(model(batch.x), batch.target).mean().detach())
        if beta == 0:
            assert float(out.loss.detach()) == pytest.approx(ce, rel=1e-6)
        else:
            assert float(out.loss.detach()) > ce and out.logs["trades_kl"] > 0


def test_trades_distributions_for_every_task_kind() -> None:
    z = torch.tensor([[0.3], [-2.0]])
    log_p = log_distribution(BINARY, z)
    assert torch.allclose(log_p.exp(), BINARY.probabilities(z), atol=1e-6)
    multi = ClassificationTask(kind="multilabel", num_classes=3)
    zl = torch.randn(4, 3)
    assert log_distribution(multi, zl).shape == (4, 3, 2)
    same = kl_divergence(log_distribution(multi, zl), log_distribution(multi, zl))
    assert torch.allclose(same, torch.zeros(4), atol=1e-6)
    p, q = torch.tensor([[0.5, 0.5]]).log(), torch.tensor([[0.9, 0.1]]).log()
    assert float(kl_divergence(p, q)) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))


class Linear(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.linspace(-1, 1, d)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_fast_at_is_one_signed_step_of_1_25_eps_from_a_uniform_start_then_projected() -> None:
    batch = batch_of(blobs(8), 8)
    model, eps = Linear(64), 0.05
    x_adv = FastAdversarialTraining(eps=eps).perturb(model, batch, ctx(seed=5))
    start = random_start(batch.x, torch.full((8,), eps), "linf", torch.Generator().manual_seed(5))
    # CE gradient of a linear one-logit model: −(2y−1)·w up to a positive factor
    sign = -(2 * batch.target.float() - 1)[:, None] * model.fc.weight.detach().sign()
    moved = start + 1.25 * eps * sign.reshape(batch.x.shape)
    expected = torch.min(torch.max(moved, batch.x - eps), batch.x + eps).clamp(0, 1)
    assert torch.allclose(x_adv, expected, atol=1e-6)
    assert float((x_adv - batch.x).abs().max()) <= eps + 1e-6


def manual_loss(name: str, model: nn.Module, batch: Batch, seed: int) -> torch.Tensor:
    """The method's loss recomputed from its (detached) perturbation with the same random numbers."""
    c, y = ctx(seed=seed), batch.target
    if name == "pgd_at":
        return BINARY.loss(model(PGDAdversarialTraining(steps=3).perturb(model, batch, c)[0]), y).mean()
    if name == "fast_at":
        return BINARY.loss(model(FastAdversarialTraining().perturb(model, batch, c)), y).mean()
    if name == "fgsm_aug":
        method = FGSMAugmentation(eps=0.05, percentage=25)
        method.setup(model, len(batch.x), BINARY)
        x, y = method.perturb(model, batch, c)
        return BINARY.loss(model(x), y).mean()
    clean, adv = model(batch.x), model(TRADES(steps=3).perturb(model, batch, c))
    kl = kl_divergence(log_distribution(BINARY, clean), log_distribution(BINARY, adv)).mean()
    return BINARY.loss(clean, y).mean() + 6 * kl


@pytest.mark.parametrize("name", ["pgd_at", "fast_at", "fgsm_aug", "trades"])
def test_attack_gradients_do_not_leak_into_the_update(name: str) -> None:
    model, batch = cnn(norm="none"), batch_of(blobs(16))  # no batch norm: the forward is mode-independent
    options = {"pgd_at": {"steps": 3}, "trades": {"steps": 3}, "fgsm_aug": {"eps": 0.05, "percentage": 25}}
    method = METHODS.create(name, **options.get(name, {}))
    method.setup(model, len(batch.x), BINARY)
    out = method.training_step(model, batch, ctx(seed=11))
    assert all(p.grad is None for p in model.parameters())
    out.loss.backward()
    got = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    manual_loss(name, model, batch, 11).backward()
    want = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(got) == len(want) > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want))


def test_bad_options_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="adv_weight"):
        METHODS.create("pgd_at", adv_weight=2.0)
    with pytest.raises(ConfigError, match="norm"):
        METHODS.create("fast_at", norm="l1")
    with pytest.raises(ConfigError, match="eps"):
        METHODS.create("trades", eps=-1.0)
    with pytest.raises(ConfigError, match="mode"):
        METHODS.create("fgsm_aug", mode="swap")
