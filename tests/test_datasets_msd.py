"""msd-heart / msd-hippocampus / msd-prostate: tiny Decathlon folders in the exact format, nnU-Net's split, slices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medrobust.config import load_config
from medrobust.data import load
from medrobust.data.msd import case_id, nnunet_fold, split_cases, zscore_unit
from medrobust.errors import ConfigError, DataError
from medrobust.tasks import SegmentationTask
from medrobust.training.runs import train_run

nib = pytest.importorskip("nibabel")


def write_msd(root: Path, folder: str, n: int, modalities: int = 1, shape: tuple[int, int, int] = (12, 10, 4)) -> Path:
    """A Decathlon task folder with ``n`` cases of ``shape`` (x, y, z) voxels: a bright square labelled 1 (and a
    second square labelled 2) on every other slice; 4D images when ``modalities > 1``."""
    task = root / folder
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    training = []
    for k in range(n):
        label = np.zeros(shape, dtype=np.uint8)
        label[2:6, 3:7, ::2] = 1
        label[7:10, 1:3, ::2] = 2
        image = rng.normal(100, 10, (*shape, modalities)).astype(np.float32) + 80 * (label > 0)[..., None]
        name = f"case_{k:03d}.nii.gz"
        volume = image if modalities > 1 else image[..., 0]
        nib.Nifti1Image(volume, np.eye(4)).to_filename(str(task / "imagesTr" / name))
        nib.Nifti1Image(label, np.eye(4)).to_filename(str(task / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    catalog: dict[str, Any] = {
        "name": folder, "modality": {str(m): f"MRI{m}" for m in range(modalities)},
        "labels": {"0": "background", "1": "front", "2": "back"}, "numTraining": n, "numTest": 0,
        "training": training, "test": [],
    }  # fmt: skip
    (task / "dataset.json").write_text(json.dumps(catalog))
    return task


def test_nnunet_fold_matches_sklearn_kfold() -> None:
    sklearn = pytest.importorskip("sklearn.model_selection")
    keys = [f"la_{k:03d}" for k in (3, 4, 5, 7, 9, 10, 11, 14, 16, 17, 18, 19, 20, 21, 22, 23, 24, 26, 29, 30)]
    for n in (5, 13, 20):
        ordered = np.sort(keys[:n])
        for fold, (train, held) in enumerate(sklearn.KFold(5, shuffle=True, random_state=12345).split(ordered)):
            assert nnunet_fold(keys[:n][::-1], fold) == (list(ordered[train]), list(ordered[held]))


def test_split_cases_partition_the_fold() -> None:
    keys = [f"c{k:02d}" for k in range(20)]
    train, held = nnunet_fold(keys, 1)
    val, test = split_cases(keys, "val", 1), split_cases(keys, "test", 1)
    assert split_cases(keys, "train", 1) == train and len(held) == 4
    assert (val, test) == (held[:1], held[1:]) and sorted(train + val + test) == keys
    with pytest.raises(ConfigError, match=r"fold must be 0\.\.4"):
        nnunet_fold(keys, 5)
    with pytest.raises(DataError, match="needs at least 5"):
        nnunet_fold(keys[:4], 0)


def test_case_id_and_zscore_unit() -> None:
    assert case_id({"image": "./imagesTr/la_003.nii.gz"}) == "la_003"
    v = np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32)
    z = (v - 1.5) / v.std()
    np.testing.assert_allclose(zscore_unit(v, 2.0), np.clip((z + 2) / 4, 0, 1), rtol=1e-6)
    assert zscore_unit(np.ones(3, dtype=np.float32), 5.0).tolist() == [0.5, 0.5, 0.5]


def test_hippocampus_slices_split_and_task(tmp_path: Path) -> None:
    write_msd(tmp_path, "Task04_Hippocampus", 10)
    train = load("msd-hippocampus", "train", root=str(tmp_path), size=[8, 12])
    test = load("msd-hippocampus", "test", root=str(tmp_path / "Task04_Hippocampus"), size=[8, 12])
    assert len(train) == 8 * 4 and len(test) == 2 * 4  # 8 / 0 / 2 cases × 4 slices each
    assert train.images.shape == (32, 1, 8, 12) and train.targets.shape == (32, 8, 12)
    assert train.info.class_names == ("background", "front", "back") and train.info.task_kind == "segmentation"
    assert train.info.extra["cases"] == split_cases([f"case_{k:03d}" for k in range(10)], "train", 1)
    assert train.extras["slice"][:4].tolist() == [0, 1, 2, 3] and train.extras["case"][4] == 1
    # (x, y, z) → (z, y, x): slice 0 holds the squares, slice 1 is empty; 10×12 (y, x) resized to 8×12
    assert set(train.targets[0].unique().tolist()) == {0, 1, 2} and int(train.targets[1].sum()) == 0
    bright = train.images[0, 0][train.targets[0] > 0].float().mean()
    assert bright > train.images[0, 0][train.targets[0] == 0].float().mean() + 60
    task = train.task()
    assert isinstance(task, SegmentationTask) and task.tau == pytest.approx(0.8065869) and task.num_classes == 3
    assert train.info.extra["z_per_unit"] == 10.0
    with pytest.raises(DataError, match="val split of fold 1 has no cases"):
        load("msd-hippocampus", "val", root=str(tmp_path), size=8)
    fg = load("msd-hippocampus", "train", root=str(tmp_path), size=8, foreground_only=True, cases=2)
    assert len(fg) == 2 * 2 and fg.extras["slice"].tolist() == [0, 2, 0, 2]


def test_prostate_four_d_images_are_channels(tmp_path: Path) -> None:
    write_msd(tmp_path, "Task05_Prostate", 15, modalities=2)
    val = load("msd-prostate", "val", root=str(tmp_path), size=16)
    assert val.images.shape == (1 * 4, 2, 16, 16) and val.info.extra["modality"] == ["MRI0", "MRI1"]
    assert val.task().tau == pytest.approx(0.86081946)


def test_missing_and_broken_folders_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for root in (str(tmp_path), str(tmp_path / "absent"), None):
        monkeypatch.setenv("MEDROBUST_DATA", str(tmp_path / "empty"))
        with pytest.raises(DataError) as err:
            load("msd-heart", "train", root=root)
        message = str(err.value)
        assert "\n" not in message and "Task02_Heart.tar" in message and "medicaldecathlon.com" in message
    task = write_msd(tmp_path, "Task02_Heart", 5)
    (task / "labelsTr" / "case_002.nii.gz").unlink()
    with pytest.raises(DataError, match=r"case_002\.nii\.gz: listed in .*dataset\.json but not found"):
        load("msd-heart", "train", root=str(tmp_path), size=8)
    catalog = json.loads((task / "dataset.json").read_text())
    (task / "dataset.json").write_text(json.dumps({**catalog, "labels": {"bg": "background", "fg": "atrium"}}))
    with pytest.raises(DataError, match=r"keys \['bg', 'fg'\] are not 0, 1"):
        load("msd-heart", "train", root=str(tmp_path), size=8)
    (task / "dataset.json").write_text("{}")
    with pytest.raises(DataError, match=r"not a Decathlon dataset\.json"):
        load("msd-heart", "train", root=str(tmp_path), size=8)


def test_prostate_recipe_trains_one_epoch(tmp_path: Path) -> None:
    write_msd(tmp_path, "Task05_Prostate", 15, modalities=2)
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "msd-prostate-amat.yaml"
    config = load_config(recipe).with_values({
        "data.root": str(tmp_path), "data.options.size": 16, "data.options.cases": 2, "model.options.width": 4,
        "model.options.depth": 2, "train.epochs": 1, "train.batch_size": 8, "train.amp": False,
        "train.device": "cpu", "train.progress": False, "method.options.steps": 2,
    })  # fmt: skip
    run, history = train_run(config, tmp_path / "run")
    margins = np.load(tmp_path / "run" / "margins_epoch001.npz")["margins"]
    assert run.task.num_classes == 3 and margins.shape == (2 * 4,)  # one margin per slice: 2 cases × 4 slices
    assert history.last()["lr"] == 0.01 and np.isfinite(history.last()["train_loss"])
