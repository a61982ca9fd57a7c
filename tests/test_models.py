import pytest
import torch

from medrobust import models
from medrobust.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize(
    ("name", "options", "shape"),
    [
        ("small_cnn", {}, (2, 1, 32, 32)),
        ("small_cnn", {"norm": "group"}, (2, 3, 28, 28)),
        ("small_cnn", {"spatial_dims": 3}, (2, 1, 8, 16, 16)),
        ("resnet18", {"width": 8}, (2, 3, 28, 28)),
        ("resnet18", {"width": 8, "stem": "imagenet", "norm": "group"}, (2, 1, 64, 64)),
        ("resnet18", {"width": 4, "spatial_dims": 3}, (2, 1, 8, 16, 16)),
    ],
)
def test_models_take_unit_inputs(name: str, options: dict, shape: tuple[int, ...]) -> None:
    m = models.create(name, in_channels=shape[1], num_outputs=3, **options)
    assert isinstance(m, models.Normalize)
    assert m(torch.rand(shape)).shape == (2, 3)


def test_normalize_applies_mean_std() -> None:
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen["x"] = x
            return x

    m = models.Normalize(Spy(), mean=[0.5, 0.25], std=[0.5, 0.25])
    m(torch.full((1, 2, 2, 2), 0.5))
    assert torch.allclose(seen["x"][0, 0], torch.zeros(2, 2)) and torch.allclose(seen["x"][0, 1], torch.ones(2, 2))


def test_resnet_cifar_stem_keeps_resolution() -> None:
    m = models.ResNet18(1, 2, stem="cifar", width=4)
    assert m.stem(torch.rand(1, 1, 28, 28)).shape[-1] == 28
    m = models.ResNet18(1, 2, stem="imagenet", width=4)
    assert m.stem(torch.rand(1, 1, 28, 28)).shape[-1] == 7


def test_model_errors() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'small_cnn'"):
        models.create("smal_cnn", in_channels=1, num_outputs=1)
    with pytest.raises(ConfigError, match="unknown option 'widht'"):
        models.create("small_cnn", in_channels=1, num_outputs=1, widht=3)
    with pytest.raises(ConfigError, match="stem"):
        models.create("resnet18", in_channels=1, num_outputs=1, stem="vgg")
    with pytest.raises(ConfigError, match="norm"):
        models.create("small_cnn", in_channels=1, num_outputs=1, norm="layer")


def test_instance_norm_is_per_sample_per_channel() -> None:
    from medrobust.models.layers import norm_layer

    layer = norm_layer("instance", 3, 2)
    x = torch.randn(2, 3, 5, 4) * 3 + 1
    expected = torch.nn.functional.instance_norm(x, weight=layer.weight, bias=layer.bias, eps=layer.eps)
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer(x[:1]), expected[:1])  # no batch statistics
    unet = models.create("unet", in_channels=2, num_outputs=3, norm="instance", depth=2)
    assert unet(torch.rand(1, 2, 8, 8)).shape == (1, 3, 8, 8)
