"""AMAT's loss threshold: Huber proposal-2 estimates and the loss predicate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medrobust.errors import DataError
from medrobust.methods.loss_threshold import (
    LossPredicate,
    _gamma,
    huber_location_scale,
    loss_threshold,
    per_sample_losses,
)
from medrobust.tasks import SegmentationTask


def test_gamma_limits() -> None:
    assert _gamma(50.0) == pytest.approx(1.0)  # E[min(Z², c²)] → E[Z²] = 1
    assert _gamma(1.5) == pytest.approx(0.7785, abs=1e-4)  # statsmodels' Huber().gamma at c = 1.5


def test_huber_large_c_is_mean_and_population_std() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    mu, scale = huber_location_scale(x, c=1e3)
    assert mu == pytest.approx(5.0)
    assert scale == pytest.approx(np.sqrt(np.mean((x - 5.0) ** 2)))


def test_huber_ignores_an_outlier_and_is_consistent_for_gaussians() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 0.5, 4000)
    mu, scale = huber_location_scale(x)
    assert mu == pytest.approx(2.0, abs=0.03) and scale == pytest.approx(0.5, abs=0.03)
    mu2, scale2 = huber_location_scale(np.r_[x, 1e6])
    assert abs(mu2 - mu) < 1e-3 and abs(scale2 - scale) < 1e-3  # the plain mean would move by 250
    assert loss_threshold(x, z=2.0) == pytest.approx(mu + 2 * scale)


def test_huber_symmetric_sample_is_centred() -> None:
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 40.0, -40.0])
    assert huber_location_scale(x)[0] == pytest.approx(0.0, abs=1e-9)


def test_huber_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="constant"):
        huber_location_scale([1.0, 1.0, 1.0])
    with pytest.raises(DataError, match="finite"):
        huber_location_scale([1.0, np.nan])


def test_loss_predicate_and_per_sample_losses() -> None:
    base = SegmentationTask()
    target = torch.zeros(3, 4, 4, dtype=torch.long)
    target[0, 1, 1] = 1
    out = torch.zeros(3, 2, 4, 4)
    out[:, 0] = torch.tensor([5.0, 0.1, 2.0]).view(3, 1, 1)  # confident, unsure, fairly sure background
    losses = base.loss(out, target)
    tau = float(losses[2])
    pred = LossPredicate(base, tau)
    assert pred.correct(out, target).tolist() == (losses <= tau).tolist()
    assert torch.allclose(pred.margin(out, target), losses - tau)
    assert pred.kind == "segmentation" and pred.metrics(out, target) == base.metrics(out, target)

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return out[x[:, 0, 0, 0].long()] + 0 * self.w

    class Data:
        def __len__(self) -> int:
            return 3

        def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            x = idx.float().view(-1, 1, 1, 1).expand(-1, 1, 4, 4)
            return x, target[idx], idx

    assert torch.allclose(per_sample_losses(Fixed(), Data(), base, batch_size=2), losses)
