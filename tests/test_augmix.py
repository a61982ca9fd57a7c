"""AugMix ops (against PIL where PIL defines them), mixing, the Jensen–Shannon loss, AugMix and RobustAugMix."""

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torch import nn

from conftest import blobs
from medrobust import models
from medrobust.errors import ConfigError
from medrobust.methods import METHODS, Batch, StepContext
from medrobust.methods import augmix_ops as O
from medrobust.methods.augmix import (
    AugMix,
    augment_and_mix,
    consistency_loss,
    jensen_shannon,
    mixing_weights,
    sample_gamma,
)
from medrobust.methods.robust_augmix import RobustAugMix
from medrobust.tasks.classification import ClassificationTask

BINARY = ClassificationTask(kind="binary")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(channels: int, n: int = 4, size: int = 32, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=gen(1)).to(dtype)


def pil_image(h: int = 20, w: int = 24) -> tuple[np.ndarray, torch.Tensor]:
    a = (np.random.default_rng(0).beta(2, 5, size=(h, w)) * 255).astype(np.uint8)
    return a, torch.tensor(a, dtype=torch.float32)[None, None] / 255


def as_uint8(t: torch.Tensor) -> np.ndarray:
    return (t[0, 0] * 255).round().numpy().astype(np.int64)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", O.ALL_OPS)
def test_op_keeps_shape_range_dtype_and_changes_the_image(name: str, channels: int, dtype: torch.dtype) -> None:
    x = images(channels, dtype=dtype)
    y = O.OPS[name](x, torch.full((4,), 3.0), gen())
    assert y.shape == x.shape and y.dtype == dtype
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    if name == "color" and channels == 1:
        assert torch.equal(y, x)  # saturation of a grey image is the identity, as in PIL
    else:
        assert not torch.equal(y, x)


def test_default_and_all_op_sets() -> None:
    assert O.DEFAULT_OPS == ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y",
                             "translate_x", "translate_y")  # fmt: skip
    assert set(O.ALL_OPS) - set(O.DEFAULT_OPS) == {"brightness", "color", "contrast", "sharpness"}


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("equalize", ImageOps.equalize),
        ("posterize", lambda im: ImageOps.posterize(im, 3)),  # level 3: 4 − int(1.2) = 3 bits
        ("solarize", lambda im: ImageOps.solarize(im, 180)),  # level 3: 256 − int(76.8) = 180
        ("autocontrast", ImageOps.autocontrast),
    ],
)
def test_pixel_ops_match_pil(name: str, reference: object) -> None:
    a, t = pil_image()
    want = np.asarray(reference(Image.fromarray(a))).astype(np.int64)  # type: ignore[operator]
    got = as_uint8(O.OPS[name](t, torch.full((1,), 3.0)))
    assert np.abs(got - want).max() <= (1 if name == "autocontrast" else 0)  # PIL's LUT truncates


def test_translate_uses_the_real_image_size_and_matches_pil() -> None:
    a, t = pil_image(20, 24)
    shift = 3  # level 3.9 on a 24-wide image: int(3.9 · 8 / 10) = 3 pixels
    both = {
        np.asarray(Image.fromarray(a).transform((24, 20), Image.AFFINE, (1, 0, s, 0, 1, 0), Image.BILINEAR)).tobytes()
        for s in (shift, -shift)
    }
    for seed in range(4):
        got = as_uint8(O.translate_x(t, torch.full((1,), 3.9), gen(seed))).astype(np.uint8)
        assert got.tobytes() in both
    tiny = torch.rand(1, 1, 8, 8, generator=gen())
    assert torch.equal(O.translate_x(tiny, torch.full((1,), 3.0), gen()), tiny)  # int(3 · (8/3) / 10) = 0 px


def test_shear_matches_pil_up_to_interpolation() -> None:
    a, t = pil_image()
    want = np.asarray(Image.fromarray(a).transform((24, 20), Image.AFFINE, (1, 0.1, 0, 0, 1, 0), Image.BILINEAR))
    errors = [np.abs(as_uint8(O.shear_x(t, torch.full((1,), 10 / 3), gen(s))) - want).mean() for s in range(4)]
    assert min(errors) < 2  # one of the two signs is PIL's shear 0.1 (bilinear rounding differs by ≤ a few levels)


def test_rotation_by_a_quarter_turn_is_rot90() -> None:
    x = torch.rand(1, 1, 16, 16, generator=gen())
    y = O.rotate(x, torch.full((1,), 30.0), gen())  # int(30 · 30 / 10) = 90 degrees, random sign
    assert any(torch.allclose(y, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, -1))


def test_mixing_weights_are_convex_with_dirichlet_and_beta_moments() -> None:
    w, m = mixing_weights(20000, 3, 1.0, gen())
    assert float(w.min()) >= 0 and torch.allclose(w.sum(dim=1), torch.ones(20000))
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    assert torch.allclose(w.var(dim=0), torch.full((3,), 2 / 36), atol=4e-3)  # Dirichlet(1,1,1): α(α0−α)/(α0²(α0+1))
    assert abs(float(m.var()) - 1 / 12) < 4e-3  # Beta(1, 1) = U(0, 1)
    g = sample_gamma(torch.full((20000,), 0.5), gen(2))
    assert abs(float(g.mean()) - 0.5) < 0.03 and abs(float(g.var()) - 0.5) < 0.06


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_and_mix_is_a_convex_mix_in_range_and_deterministic(channels: int) -> None:
    x = images(channels, n=8)
    a, b = augment_and_mix(x, gen(5)), augment_and_mix(x, gen(5))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and not torch.equal(a, x)
    assert not torch.equal(a, augment_and_mix(x, gen(6)))


def test_augment_and_mix_with_identity_chains_returns_the_image() -> None:
    x = torch.rand(4, 1, 8, 8, generator=gen()) * 0.5
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0  # autocontrast is then the identity
    assert torch.allclose(augment_and_mix(x, gen(), ops=["autocontrast"]), x, atol=1e-6)


def log(p: list[list[float]]) -> torch.Tensor:
    return torch.tensor(p, dtype=torch.float64).log()


def test_jensen_shannon_properties() -> None:
    p, q, r = (torch.softmax(torch.randn(5, 4, generator=gen(s), dtype=torch.float64), 1).log() for s in range(3))
    js = jensen_shannon([p, q, r])
    assert torch.allclose(js, jensen_shannon([r, p, q])) and torch.allclose(js, jensen_shannon([q, r, p]))
    assert torch.allclose(jensen_shannon([p, p, p]), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    assert float(js.min()) > 0 and float(js.max()) <= math.log(3)
    eye = torch.eye(3, dtype=torch.float64).clamp(min=1e-30).log()
    distinct = jensen_shannon([eye[0:1], eye[1:2], eye[2:3]])
    assert distinct.item() == pytest.approx(math.log(3), abs=1e-6)  # M = 1/3 everywhere, the 1e-7 floor is idle
    two = jensen_shannon([log([[0.5, 0.5]]), log([[1.0, 1e-300]])])  # hand value: ½(KL(p‖m) + KL(q‖m))
    m = [0.75, 0.25]
    want = 0.5 * (0.5 * math.log(0.5 / m[0]) + 0.5 * math.log(0.5 / m[1]) + math.log(1 / m[0]))
    assert two.item() == pytest.approx(want, rel=1e-9)


def test_consistency_loss_on_one_logit_binary_outputs() -> None:
    z = torch.tensor([[2.0], [-1.0], [2.0], [-1.0], [2.0], [-1.0]])
    loss, js = consistency_loss(BINARY, z, torch.tensor([1, 0]), 3, 12.0)
    assert js.item() == pytest.approx(0.0, abs=1e-7)
    assert loss.item() == pytest.approx(BINARY.loss(z[:2], torch.tensor([1, 0])).mean().item(), rel=1e-6)


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return models.create("small_cnn", in_channels=1, num_outputs=1, width=4)


def ctx(seed: int = 0, step: int = 0) -> StepContext:
    return StepContext(BINARY, 1, step, gen(seed), torch.device("cpu"))


def batch(n: int = 32) -> Batch:
    return Batch(*blobs(n, size=16).batch(torch.arange(n)))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_robust_augmix_pgd_view_stays_within_eps(norm: str) -> None:
    eps = 4 / 255 if norm == "linf" else 0.5
    method = RobustAugMix(eps=eps, norm=norm, steps=3)  # type: ignore[arg-type]
    b = batch(16)
    x_adv, fooled = method.perturb(cnn(), b, ctx())
    d = (x_adv - b.x).flatten(1)
    size = d.abs().amax(dim=1) if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-6 and float(size.max()) > eps / 2
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1 and fooled.shape == (16,)


def test_robust_augmix_attacks_in_eval_mode_and_leaves_grads_alone() -> None:
    model = cnn()
    model.train()
    method = RobustAugMix(steps=2)
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
    out = method.training_step(model, batch(8), ctx())
    assert all(p.grad is None for p in model.parameters())
    assert seen[-1] is True and not all(seen)  # the attack's forwards ran in eval mode, the loss forward in train
    assert set(out.logs) == {"jsd", "adv_accuracy"} and out.output is not None and out.output.shape[0] == 8


@pytest.mark.parametrize("name", ["augmix", "robust_augmix"])
def test_methods_reduce_the_loss_in_a_few_steps(name: str) -> None:
    model, b = cnn(), batch(32)
    method = METHODS.create(name, **({"steps": 2} if name == "robust_augmix" else {}))
    params = list(model.parameters())
    losses = []
    for step in range(6):  # plain gradient descent (torch.optim's first use imports torch._dynamo: seconds)
        out = method.training_step(model, b, ctx(seed=step, step=step))
        grads = torch.autograd.grad(out.loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= 0.2 * g
        losses.append(out.loss.item())
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])


@pytest.mark.parametrize("name", ["augmix", "robust_augmix"])
def test_training_step_is_deterministic_with_the_same_generator(name: str) -> None:
    b = batch(8)
    method = METHODS.create(name, **({"steps": 2} if name == "robust_augmix" else {}))
    first = method.training_step(cnn(), b, ctx(seed=3))
    second = method.training_step(cnn(), b, ctx(seed=3))
    other = method.training_step(cnn(), b, ctx(seed=4))
    assert first.loss.item() == second.loss.item() and first.logs == second.logs
    assert first.loss.item() != other.loss.item()


def test_augmix_without_jsd_and_option_errors() -> None:
    out = AugMix(jsd=False).training_step(cnn(), batch(8), ctx())
    assert out.logs == {} and out.output is not None and out.output.shape == (8, 1)
    for bad in ({"severity": 0}, {"severity": 11}, {"width": 0}, {"depth": 0}, {"alpha": -1}):
        with pytest.raises(ConfigError):
            AugMix(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        RobustAugMix(norm="l1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="2-D images"):
        AugMix().augment(torch.rand(2, 1, 4, 4, 4), gen())


@pytest.mark.parametrize("name", ["augmix", "robust_augmix"])
def test_augmix_refuses_dense_tasks(name: str) -> None:
    from medrobust.tasks import SegmentationTask

    method = METHODS.create(name)
    with pytest.raises(ConfigError, match="misalign"):
        method.setup(nn.Identity(), 4, SegmentationTask(num_classes=2))
