"""``monai:<Name>`` models (extra ``medrobust[monai]``) and medrobust's Dice checked against MONAI's ``DiceMetric``."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import medrobust
from medrobust import models
from medrobust.cli import main
from medrobust.errors import ConfigError, UnknownNameError
from medrobust.evaluation import Results
from medrobust.metrics import segmentation as S
from medrobust.models.monai_nets import MonaiNet, dynunet_plan
from medrobust.training.export import load_exported
from medrobust.training.runs import load_run

monai_metrics = pytest.importorskip("monai.metrics")

TINY_DENSENET = {"init_features": 8, "growth_rate": 8, "block_config": [2, 2, 2, 2]}
TRAIN = ["--epochs", "1", "--batch-size", "8", "--no-progress"]
EVAL = ["--eps", "0,2/255", "--steps", "2", "--n", "8", "--no-progress", "--threads", "1"]


@pytest.mark.parametrize(
    ("name", "options", "shape", "out_shape"),
    [
        ("monai:DenseNet121", TINY_DENSENET, (2, 1, 32, 32), (2, 3)),
        ("monai:BasicUNet", {"features": [4, 4, 8, 8, 16, 4]}, (2, 2, 32, 32), (2, 3, 32, 32)),
        ("monai:DynUNet", {"filters": [4, 8, 16], "deep_supervision": True}, (2, 1, 28, 28), (2, 3, 28, 28)),
        ("monai:BasicUNetPlusPlus", {"features": [4, 4, 8, 8, 16, 4], "deep_supervision": True}, (2, 1, 32, 32),
         (2, 3, 32, 32)),
        ("monai:ViT", {"patch_size": 8, "hidden_size": 8, "mlp_dim": 8, "num_layers": 1, "num_heads": 1,
                       "classification": True}, (2, 1, 16, 16), (2, 3)),
        ("monai:ResNet", {"block": "basic", "layers": [1, 1, 1, 1], "block_inplanes": [4, 4, 8, 8]},
         (2, 1, 16, 16, 16), (2, 3)),
    ],
)  # fmt: skip
def test_networks_give_logits_and_input_gradients_in_training_mode(
    name: str, options: dict[str, Any], shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> None:
    spatial = list(shape[2:])
    net = models.create(name, in_channels=shape[1], num_outputs=3, spatial_dims=len(spatial), image_size=spatial,
                        **options)  # fmt: skip
    assert isinstance(net, models.Normalize) and isinstance(net.net, MonaiNet) and net.training
    x = torch.rand(shape, requires_grad=True)
    out = net(x)
    assert out.shape == out_shape
    out.square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_dynunet_plan_follows_the_nnunet_rule() -> None:
    kernels, strides, up = dynunet_plan([64, 64])
    assert strides == [[1, 1]] + [[2, 2]] * 4 and up == strides[1:] and kernels == [[3, 3]] * 5
    assert dynunet_plan([28, 28])[1] == [[1, 1], [2, 2], [2, 2]]  # 28 → 14 → 7 (odd)
    assert dynunet_plan([8, 64, 64])[1] == [[1, 1, 1], [2, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]]
    assert len(dynunet_plan([512, 512])[1]) == 6  # at most 5 downsamplings


@pytest.mark.parametrize(
    ("name", "options", "error", "message"),
    [
        ("monai:DenseNet12", {}, UnknownNameError, "did you mean 'DenseNet121'"),
        ("monai:_Private", {}, UnknownNameError, "unknown MONAI network"),
        ("monai:BasicUNet", {"featurs": [4] * 6}, ConfigError, "unknown option 'featurs'.*did you mean 'features'"),
        ("monai:DenseNet121", {"init_feature": 8}, ConfigError, "rejected its options.*'init_feature'"),
        ("monai:DenseNet121", {"out_channels": 2}, ConfigError, "'out_channels' of monai:DenseNet121 is set from"),
        ("monai:DenseNet121", {"pretrained": True}, ConfigError, "pretrained weights are not supported"),
        ("monai:DenseNet121", TINY_DENSENET, ConfigError, "cannot take inputs of size 8×8"),
        ("monai:ViT", {"patch_size": 8, "hidden_size": 8, "mlp_dim": 8, "num_layers": 1, "num_heads": 1},
         ConfigError, r"outputs of shape \(1, 1, 8\)"),
        ("monai:PatchMerging", {"dim": 4}, ConfigError, "no argument for the input channels"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(name: str, options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        models.create(name, in_channels=1, num_outputs=2, image_size=[8, 8], **options)
    assert "\n" not in str(info.value)


def test_dynunet_without_input_size_needs_its_plan() -> None:
    with pytest.raises(ConfigError, match="DynUNet needs kernel_size, strides, upsample_kernel_size"):
        models.create("monai:DynUNet", in_channels=1, num_outputs=2)
    plan = dict(zip(("kernel_size", "strides", "upsample_kernel_size"), dynunet_plan([16, 16])))
    net = models.create("monai:DynUNet", in_channels=1, num_outputs=2, filters=[4, 4, 8], **plan)
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 2, 16, 16)
    assert models.takes_image_size("monai:DynUNet") and not models.takes_image_size("unet")


def test_missing_monai_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_monai(name: str, package: str | None = None) -> Any:
        if name.startswith("monai"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_monai)
    with pytest.raises(ConfigError, match=r"pip install 'medrobust\[monai\]'"):
        models.create("monai:DenseNet121", in_channels=1, num_outputs=2)


def test_list_models_shows_the_monai_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models"]) == 0
    assert "| monai:<Name> " in capsys.readouterr().out


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for model, options in (("monai:DenseNet12", "{}"), ("monai:DenseNet121", "{init_feature: 8}")):
        args = ["train", "--dataset", "phantom-ct", "--model", model, "--set", f"model.options={options}"]
        assert main([*args, "--set", "data.options={size: 32, n: 8}", *TRAIN, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A MONAI classifier (DenseNet121) and a MONAI U-Net (DynUNet), each trained one epoch on a tiny phantom."""
    base = tmp_path_factory.mktemp("monai-runs")
    specs = {
        "densenet": ("phantom-ct", "monai:DenseNet121", json.dumps(TINY_DENSENET)),
        "dynunet": ("phantom-ct-seg", "monai:DynUNet", json.dumps({"filters": [4, 8, 16, 16]})),
    }
    for key, (dataset, model, options) in specs.items():
        args = ["train", "--dataset", dataset, "--model", model, "--set", f"model.options={options}"]
        data = "data.options={size: 32, n: 16, progress: false}"
        assert main([*args, "--set", data, *TRAIN, "--threads", "1", "--out", str(base / key)]) == 0
    return {key: base / key for key in specs}


@pytest.mark.parametrize(("key", "metric"), [("densenet", "accuracy"), ("dynunet", "dice")])
def test_trained_monai_models_evaluate_under_pgd(runs: dict[str, Path], key: str, metric: str) -> None:
    assert main(["evaluate", str(runs[key]), *EVAL]) == 0
    results = Results.load(runs[key] / "results.json")
    levels, values = results.curve("pgd", metric)
    assert levels == pytest.approx([0, 2 / 255]) and len(values) == 2 and results.n == 8


@pytest.mark.parametrize("key", ["densenet", "dynunet"])
def test_checkpoint_and_export_rebuild_the_same_model(runs: dict[str, Path], key: str, tmp_path: Path) -> None:
    assert main(["export", str(runs[key]), "--out", str(tmp_path / "m.safetensors")]) == 0
    run = load_run(runs[key])
    x = run.dataset("test").batch(torch.arange(4))[0]
    loaded, exported = run.model(x), load_exported(tmp_path / "m.safetensors")(x)
    assert torch.equal(loaded, exported) and torch.equal(loaded, medrobust.load_model(runs[key])(x))
    assert run.config.model.name.startswith("monai:") and loaded.shape[:2] == (4, run.task.output_dim)


def _monai_dice(pred: torch.Tensor, target: torch.Tensor, k: int, **kwargs: Any) -> torch.Tensor:
    """MONAI's ``DiceMetric`` of label maps ``(N, *spatial)`` given one-hot, per sample and class."""
    metric = monai_metrics.DiceMetric(reduction="none", **kwargs)
    onehot = [torch.nn.functional.one_hot(t.long(), k).movedim(-1, 1) for t in (pred, target)]
    return metric(*onehot).double()


def _masks(seed: int, n: int = 12, k: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Random label maps where some samples have classes absent from the prediction, the truth, or both."""
    g = torch.Generator().manual_seed(seed)
    pred, target = torch.randint(0, k, (2, n, 6, 6), generator=g)
    pred[0], target[0] = 0, 0  # every class empty in both
    target[1][target[1] == 2] = 0  # class 2 absent from the truth ...
    pred[1][pred[1] == 2] = 0  # ... and from the prediction
    target[2][target[2] == 3] = 0  # class 3 absent from the truth but predicted
    pred[3] = 0  # nothing predicted
    return pred, target


@pytest.mark.parametrize("ignore_empty", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_dice_matches_monai_dice_metric(ignore_empty: bool, seed: int) -> None:
    k = 4
    pred, target = _masks(seed, k=k)
    ours = S.dice_per_class(pred, target, k, ignore_empty=ignore_empty)
    theirs = _monai_dice(pred, target, k, include_background=False, ignore_empty=ignore_empty)
    torch.testing.assert_close(ours, theirs, equal_nan=True)
    assert bool(ours.isnan().any()) == ignore_empty
    empty_both, predicted_absent = (float("nan"), float("nan")) if ignore_empty else (1.0, 0.0)
    torch.testing.assert_close(ours[0], torch.full((3,), empty_both, dtype=torch.float64), equal_nan=True)
    torch.testing.assert_close(ours[2, 2], torch.tensor(predicted_absent, dtype=torch.float64), equal_nan=True)
    reduced = monai_metrics.DiceMetric(include_background=False, reduction="mean", ignore_empty=ignore_empty)
    onehot = [torch.nn.functional.one_hot(t, k).movedim(-1, 1) for t in (pred, target)]
    reduced(*onehot)
    per_sample = S.dice_per_sample(pred, target, k, ignore_empty=ignore_empty)
    assert float(per_sample.nanmean()) == pytest.approx(float(reduced.aggregate()))  # MONAI's "mean" reduction


def test_empty_class_rule_in_both_policies() -> None:
    empty, lesion = torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long)
    lesion[0, 1, 1] = 1
    assert S.dice_per_class(empty, empty, 2).item() == 1.0  # nothing to find, nothing found
    assert S.dice_per_class(lesion, empty, 2).item() == 0.0  # a hallucinated lesion counts …
    assert S.dice_per_class(lesion, empty, 2, ignore_empty=True).isnan().all()  # … unless ignored (MONAI default)
    assert S.dice_per_sample(lesion, empty, 2, reduce="max", ignore_empty=True).isnan().all()
    assert S.total_dice(lesion, lesion, 2, ignore_empty=True) == 1.0


def test_background_dice_matches_monai_include_background() -> None:
    """medrobust never scores class 0; MONAI's background column is medrobust's Dice of "class 0 vs the rest"."""
    k = 3
    pred, target = _masks(2, k=k)
    theirs = _monai_dice(pred, target, k, include_background=True, ignore_empty=False)
    background = S.dice_per_class((pred == 0).long(), (target == 0).long(), 2)
    torch.testing.assert_close(theirs[:, :1], background)
    torch.testing.assert_close(theirs[:, 1:], S.dice_per_class(pred, target, k))
