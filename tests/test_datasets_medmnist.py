"""MedMNIST 3D volumes, every flag's metadata, the default root and the opt-in download (faked, never online)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataset_files import train_and_attack
from medrobust.data import load, medmnist
from medrobust.data.medmnist_info import ALL_FLAGS, INFO_3D
from medrobust.errors import ConfigError, DataError

# (flag, task kind, classes, channels) after the official medmnist.INFO
OFFICIAL = [
    ("pathmnist", "multiclass", 9, 3), ("chestmnist", "multilabel", 14, 1), ("dermamnist", "multiclass", 7, 3),
    ("octmnist", "multiclass", 4, 1), ("pneumoniamnist", "binary", 2, 1), ("retinamnist", "multiclass", 5, 3),
    ("breastmnist", "binary", 2, 1), ("bloodmnist", "multiclass", 8, 3), ("tissuemnist", "multiclass", 8, 1),
    ("organamnist", "multiclass", 11, 1), ("organcmnist", "multiclass", 11, 1), ("organsmnist", "multiclass", 11, 1),
    ("organmnist3d", "multiclass", 11, 1), ("nodulemnist3d", "binary", 2, 1), ("adrenalmnist3d", "binary", 2, 1),
    ("fracturemnist3d", "multiclass", 3, 1), ("vesselmnist3d", "binary", 2, 1), ("synapsemnist3d", "binary", 2, 1),
]  # fmt: skip


def assert_one_line(err: pytest.ExceptionInfo[Any], *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def fake_3d(path: Path, *, side: int = 28, classes: int = 11, n: tuple[int, int, int] = (8, 4, 4)) -> dict:
    """A MedMNIST 3D npz: ``{split}_images`` uint8 (N, D, H, W), ``{split}_labels`` (N, 1); class k is brighter."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        labels = np.arange(count) % classes
        vols = rng.integers(0, 60, (count, side, side, side), dtype=np.uint8)
        vols += (labels * (190 // max(classes - 1, 1))).astype(np.uint8)[:, None, None, None]
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = vols, labels[:, None].astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return arrays


@pytest.mark.parametrize(("flag", "kind", "classes", "channels"), OFFICIAL)
def test_every_flag_has_official_metadata(flag: str, kind: str, classes: int, channels: int) -> None:
    info = ALL_FLAGS[flag]
    assert (info.task_kind, len(info.class_names), info.channels) == (kind, classes, channels)
    assert info.spatial_dims == (3 if flag.endswith("3d") else 2)
    assert info.sizes == ((28, 64) if flag.endswith("3d") else (28, 64, 128, 224))


def test_3d_volumes_round_trip(tmp_path: Path) -> None:
    raw = fake_3d(tmp_path / "organmnist3d.npz")
    ds = load("medmnist", "val", root=str(tmp_path), flag="organmnist3d")
    assert ds.images.shape == (4, 1, 28, 28, 28) and ds.info.spatial == (28, 28, 28) and ds.info.channels == 1
    np.testing.assert_array_equal(ds.images.numpy()[:, 0], raw["val_images"])
    np.testing.assert_array_equal(ds.targets.numpy(), raw["val_labels"][:, 0])
    assert ds.info.class_names[0] == "liver" and ds.info.class_names[10] == "pancreas"  # 3D organ order
    x, y, i = ds[2]
    assert x.shape == (1, 28, 28, 28) and float(x.max()) <= 1.0 and int(y) == 2 and i == 2


def test_3d_size_64_and_binary(tmp_path: Path) -> None:
    fake_3d(tmp_path / "nodulemnist3d_64.npz", side=64, classes=2, n=(2, 2, 2))
    ds = load("medmnist", "test", root=str(tmp_path), flag="nodulemnist3d", size=64)
    assert ds.images.shape == (2, 1, 64, 64, 64) and ds.info.task_kind == "binary"
    assert ds.info.class_names == ("benign", "malignant") and ds.info.extra["positive_class"] == 1


def test_3d_bad_shapes_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "vesselmnist3d.npz"
    fake_3d(path, classes=2)
    arrays = dict(np.load(path))
    arrays["train_images"] = arrays["train_images"][:, :27]
    np.savez_compressed(path, **arrays)
    with pytest.raises(DataError) as err:
        load("medmnist", "train", root=str(tmp_path), flag="vesselmnist3d")
    assert_one_line(err, str(path), "(8, 27, 28, 28)", "expected uint8 (N, 28, 28, 28)")
    with pytest.raises(ConfigError) as err:
        load("medmnist", "train", root=str(tmp_path), flag="vesselmnist3d", size=128)
    assert_one_line(err, "28, 64", "3D flag")


def test_default_root_is_medrobust_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDROBUST_DATA", str(tmp_path))
    (tmp_path / "medmnist").mkdir()
    fake_3d(tmp_path / "medmnist" / "fracturemnist3d.npz", classes=3)
    ds = load("medmnist", "train", flag="fracturemnist3d")
    assert ds.info.extra["path"] == str(tmp_path / "medmnist" / "fracturemnist3d.npz") and ds.info.num_classes == 3


def test_missing_file_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "medmnist", None)  # not installed
    monkeypatch.setattr(medmnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError) as err:
        load("medmnist", "train", root=str(tmp_path), flag="synapsemnist3d", size=64)
    assert_one_line(err, "synapsemnist3d_64.npz", str(tmp_path), "zenodo", "pip install medmnist")
    with pytest.raises(DataError) as err:
        load("medmnist", "train", root=str(tmp_path), flag="synapsemnist3d", download=True)
    assert_one_line(err, "pip install 'medrobust[medmnist]'")
    monkeypatch.setattr(medmnist.importlib.util, "find_spec", lambda name: object())  # installed
    with pytest.raises(DataError) as err:
        load("medmnist", "train", root=str(tmp_path), flag="synapsemnist3d")
    assert_one_line(err, "data.options.download=true", "does not download unless asked")


def fake_package(calls: list[dict[str, Any]], *, write: bool = True) -> types.ModuleType:
    """A stand-in for the medmnist package whose dataset classes 'download' by writing a fake npz."""
    module = types.ModuleType("medmnist")
    module.INFO = {"adrenalmnist3d": {"python_class": "AdrenalMNIST3D"}}  # type: ignore[attr-defined]

    class AdrenalMNIST3D:
        def __init__(self, *, split: str, root: str, download: bool, size: int) -> None:
            calls.append({"split": split, "root": root, "download": download, "size": size})
            if write:
                name = "adrenalmnist3d.npz" if size == 28 else f"adrenalmnist3d_{size}.npz"
                fake_3d(Path(root) / name, classes=2)

    module.AdrenalMNIST3D = AdrenalMNIST3D  # type: ignore[attr-defined]
    return module


def test_download_option_uses_the_medmnist_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setitem(sys.modules, "medmnist", fake_package(calls))
    root = tmp_path / "new"
    ds = load("medmnist", "test", root=str(root), flag="adrenalmnist3d", download=True)
    assert calls == [{"split": "test", "root": str(root), "download": True, "size": 28}]
    assert ds.images.shape == (4, 1, 28, 28, 28)
    load("medmnist", "train", root=str(root), flag="adrenalmnist3d", download=True)
    assert len(calls) == 1  # present now: no second download
    monkeypatch.setitem(sys.modules, "medmnist", fake_package(calls, write=False))
    with pytest.raises(DataError) as err:
        load("medmnist", "test", root=str(tmp_path / "other"), flag="adrenalmnist3d", download=True)
    assert_one_line(err, "did not write", "zenodo")


def test_3d_flags_listed() -> None:
    assert sorted(INFO_3D) == sorted(
        ["organmnist3d", "nodulemnist3d", "adrenalmnist3d", "fracturemnist3d", "vesselmnist3d", "synapsemnist3d"]
    )


def test_3d_medmnist_end_to_end(tmp_path: Path) -> None:
    fake_3d(tmp_path / "adrenalmnist3d.npz", classes=2, n=(4, 2, 2))
    run, acc = train_and_attack(tmp_path, "medmnist", tmp_path, {"flag": "adrenalmnist3d"}, model="resnet18")
    assert run.task.kind == "binary" and run.dataset("test").images.ndim == 5
    first_conv = next(m for m in run.model.modules() if m.__class__.__name__.startswith("Conv"))
    assert first_conv.__class__.__name__ == "Conv3d"
    assert 0.0 <= acc["fgsm"] <= 1.0 and 0.0 <= acc["clean"] <= 1.0 and 0.0 < acc["max_change"] <= 0.05 + 1e-6
