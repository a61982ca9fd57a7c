"""Noise corruptions against their definitions and against ``skimage.util.random_noise``."""

from __future__ import annotations

import pytest
import torch
from skimage.util import random_noise

from medrobust.corruptions import CORRUPTIONS, GaussianNoise, SaltPepperNoise, SpeckleNoise, UniformNoise
from medrobust.errors import ConfigError, DataError

X = torch.full((8, 1, 64, 64), 0.5)  # 32768 elements, far from the clip edges for small variances
N = X.numel()


def noisy(corruption: object, level: float, seed: int = 0) -> torch.Tensor:
    return corruption(X, level, generator=torch.Generator().manual_seed(seed))  # type: ignore[operator]


def reference(mode: str, **kwargs: float) -> torch.Tensor:
    return torch.from_numpy(random_noise(X.numpy(), mode=mode, rng=0, **kwargs)).float()


@pytest.mark.parametrize(("name", "var", "scale"), [("gaussian", 0.01, 1.0), ("speckle", 0.04, 0.25)])
def test_additive_and_multiplicative_gaussian_moments(name: str, var: float, scale: float) -> None:
    """Residual mean 0 and variance ``var`` (gaussian) or ``x²·var`` (speckle), as skimage's."""
    ours, theirs = noisy(CORRUPTIONS.create(name), var) - X, reference(name, var=var) - X
    expected_var, tol = scale * var, 4 * (scale * var) ** 0.5 / N**0.5
    for r in (ours, theirs):
        assert abs(float(r.mean())) < tol
        assert abs(float(r.var()) / expected_var - 1) < 0.04
    assert abs(float(ours.var()) - float(theirs.var())) < 0.05 * expected_var


def test_clipping_matches_skimage() -> None:
    """With variance 1 about 31 % of the pixels clip at each end (P(N(0, 1) > 0.5))."""
    ours, theirs = noisy(GaussianNoise(), 1.0), reference("gaussian", var=1.0)
    assert ours.min() >= 0 and ours.max() <= 1
    for edge in (0.0, 1.0):
        frac = float((ours == edge).float().mean())
        assert abs(frac - 0.3085) < 0.01 and abs(frac - float((theirs == edge).float().mean())) < 0.015


@pytest.mark.parametrize(("amount", "salt"), [(0.3, 0.5), (0.1, 0.8)])
def test_salt_and_pepper_fractions(amount: float, salt: float) -> None:
    ours = noisy(SaltPepperNoise(salt_vs_pepper=salt), amount)
    theirs = reference("s&p", amount=amount, salt_vs_pepper=salt)
    for out in (ours, theirs):
        assert abs(float((out == 1).float().mean()) - amount * salt) < 0.01
        assert abs(float((out == 0).float().mean()) - amount * (1 - salt)) < 0.01
        assert abs(float((out == 0.5).float().mean()) - (1 - amount)) < 0.01


def test_uniform_noise_has_the_level_as_l2_norm() -> None:
    x = torch.full((5, 1, 16, 16), 0.3)
    out = UniformNoise()(x, 1.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose((out - x).flatten(1).norm(dim=1), torch.full((5,), 1.5), rtol=1e-5)
    assert (out - x).min() >= 0
    sym = UniformNoise(symmetric=True)(x, 1.5, generator=torch.Generator().manual_seed(0)) - x
    assert abs(float(sym.mean())) < 0.01 and torch.allclose(sym.flatten(1).norm(dim=1), torch.full((5,), 1.5))
    box = UniformNoise(norm="linf")(x, 0.2, generator=torch.Generator().manual_seed(0)) - x
    assert box.min() >= 0 and box.max() <= 0.2 and abs(float(box.mean()) - 0.1) < 0.01


@pytest.mark.parametrize("name", ["uniform", "gaussian", "salt_pepper", "speckle"])
def test_level_zero_seeds_and_range(name: str) -> None:
    corruption = CORRUPTIONS.create(name)
    assert torch.equal(noisy(corruption, 0.0), X)
    assert torch.equal(noisy(corruption, 0.3, seed=4), noisy(corruption, 0.3, seed=4))
    assert not torch.equal(noisy(corruption, 0.3, seed=4), noisy(corruption, 0.3, seed=5))
    out = noisy(corruption, 0.9)
    assert out.shape == X.shape and out.min() >= 0 and out.max() <= 1 and not torch.equal(out, X)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: GaussianNoise()(X, -0.1), ConfigError),
        (lambda: SpeckleNoise()(X, float("nan")), ConfigError),
        (lambda: SaltPepperNoise()(X, 1.5), ConfigError),
        (lambda: SaltPepperNoise(salt_vs_pepper=2.0), ConfigError),
        (lambda: UniformNoise(norm="l1"), ConfigError),  # type: ignore[arg-type]
        (lambda: GaussianNoise()(X + 1, 0.1), DataError),
        (lambda: GaussianNoise()(X * float("inf"), 0.1), DataError),
    ],
)
def test_errors(call: object, error: type) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_registry() -> None:
    assert set(CORRUPTIONS.names()) == {"uniform", "gaussian", "salt_pepper", "speckle"}
    assert CORRUPTIONS.create("salt_pepper", salt_vs_pepper=0.3) == SaltPepperNoise(0.3)
