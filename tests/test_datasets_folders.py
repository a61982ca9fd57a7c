"""image-folder and covid-ct: class-per-folder PNG/JPEG/TIFF files, seeded stratified splits, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dataset_files import train_and_attack, truncate, write_class_folders, write_png
from medrobust.data import load
from medrobust.errors import ConfigError, DataError

COVID = {"non-COVID": 10, "COVID": 10}


def assert_one_line(err: pytest.ExceptionInfo[Any], *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def load_all(name: str, root: Path, **options: Any) -> dict[str, Any]:
    return {s: load(name, s, root=str(root), **options) for s in ("train", "val", "test")}


def test_covid_ct_split_is_stratified_disjoint_and_stated(tmp_path: Path) -> None:
    write_class_folders(tmp_path, COVID)
    parts = load_all("covid-ct", tmp_path, size=12)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    for ds in parts.values():
        np.testing.assert_array_equal(ds.class_counts(), np.full(2, len(ds) // 2))
        assert ds.images.shape[1:] == (1, 12, 12) and ds.images.dtype.is_floating_point is False
    info = parts["test"].info
    assert info.class_names == ("non-COVID", "COVID") and info.extra["positive_class"] == 1
    assert info.task_kind == "binary" and "seed 0" in info.extra["split_rule"]
    assert "stratified" in info.extra["split_rule"] and "no patient ids" in info.extra["patient_ids"].replace(
        "publish no patient ids", "no patient ids"
    )
    means = [parts["train"].images[parts["train"].targets == k].float().mean() for k in (0, 1)]
    assert means[1] > means[0] + 100  # COVID/ images are the bright ones: labels follow the folders
    fingerprints = {s: {tuple(x.flatten()[:20].tolist()) for x in parts[s].images} for s in parts}
    assert not fingerprints["train"] & fingerprints["test"] and not fingerprints["val"] & fingerprints["test"]


def test_split_depends_on_seed_only(tmp_path: Path) -> None:
    write_class_folders(tmp_path, COVID)
    a, b = (load("covid-ct", "test", root=str(tmp_path), size=8, seed=s).images for s in (0, 0))
    c = load("covid-ct", "test", root=str(tmp_path), size=8, seed=1).images
    assert np.array_equal(a.numpy(), b.numpy()) and not np.array_equal(a.numpy(), c.numpy())


def test_resize_matches_pillow_bilinear(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3}, size=(30, 24))
    ds = load("image-folder", "train", root=str(tmp_path), size=[10, 8], val_fraction=0.0, test_fraction=0.0)
    first = sorted((tmp_path / "a").iterdir())[0]
    expected = np.asarray(Image.open(first).convert("L").resize((8, 10), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(ds.images[0, 0].numpy(), expected)


def test_image_folder_formats_rgb_and_multiclass(tmp_path: Path) -> None:
    for ext, value in ((".png", 30), (".jpg", 120), (".tif", 220)):
        for k in range(5):
            write_png(tmp_path / f"class{ext}" / f"x{k}{ext}", value, mode="RGB", seed=k)
    (tmp_path / "class.png" / "notes.txt").write_text("not an image")
    ds = load("image-folder", "train", root=str(tmp_path), color="rgb", size=16, val_fraction=0.2, test_fraction=0.2)
    assert ds.images.shape == (9, 3, 16, 16) and ds.info.task_kind == "multiclass" and ds.info.num_classes == 3
    assert ds.info.class_names == ("class.jpg", "class.png", "class.tif")


def test_sixteen_bit_png_is_scaled(tmp_path: Path) -> None:
    for cls, value in (("a", 1000), ("b", 60000)):
        for k in range(3):
            path = tmp_path / cls / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), value, np.uint16)).save(path)
    ds = load("image-folder", "train", root=str(tmp_path), size=None, val_fraction=0.0, test_fraction=0.0)
    assert sorted({int(v) for v in ds.images.unique()}) == [round(1000 / 65535 * 255), round(60000 / 65535 * 255)]


def test_official_split_folders_are_used(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "train", {"a": 6, "b": 6})
    write_class_folders(tmp_path / "test", {"a": 2, "b": 3})
    test = load("image-folder", "test", root=str(tmp_path), size=8)
    train = load("image-folder", "train", root=str(tmp_path), size=8, val_fraction=0.5)
    val = load("image-folder", "val", root=str(tmp_path), size=8, val_fraction=0.5)
    assert len(test) == 5 and "official" in test.info.extra["split_rule"]
    assert len(train) == 6 and len(val) == 6 and "carved" in val.info.extra["split_rule"]
    write_class_folders(tmp_path / "test", {"b": 1})  # a test folder without class a keeps b's label
    shutil.rmtree(tmp_path / "test" / "a")
    with pytest.raises(DataError) as err:
        load("image-folder", "test", root=str(tmp_path), size=8)
    assert_one_line(err, "class folder(s) a missing")


def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = write_class_folders(tmp_path, COVID)
    bad = files["COVID"][3]
    truncate(bad)
    with pytest.raises(DataError) as err:
        load_all("covid-ct", tmp_path, size=8, val_fraction=0.0, test_fraction=0.0)
    assert_one_line(err, str(bad), "truncated", "--skip-bad")
    ds = load("covid-ct", "train", root=str(tmp_path), size=8, val_fraction=0.0, test_fraction=0.0, skip_bad=True)
    assert len(ds) == 19 and ds.info.extra["skipped_bad"] == 1 and str(bad) in ds.info.extra["skipped_files"][0]
    assert "skipped 1 bad file(s)" in capsys.readouterr().err


def test_folder_outside_class_list_and_missing_class(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"non-COVID": 4, "COVID": 4, "maybe": 2})
    with pytest.raises(DataError) as err:
        load("covid-ct", "train", root=str(tmp_path), size=8)
    assert_one_line(err, str(tmp_path / "maybe"), "not in the class list")
    ds = load("covid-ct", "train", root=str(tmp_path), size=8, skip_bad=True, val_fraction=0.25, test_fraction=0.25)
    assert ds.info.extra["skipped_bad"] == 1 and len(ds) == 4
    with pytest.raises(DataError) as err:
        load("image-folder", "train", root=str(tmp_path), classes=["COVID", "normal"], skip_bad=True)
    assert_one_line(err, "normal missing")


def test_empty_split_and_bad_options(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(DataError) as err:
        load("image-folder", "val", root=str(tmp_path), size=8, val_fraction=0.0)
    assert_one_line(err, "the val split is empty", "train 4, val 0, test 2")
    with pytest.raises(ConfigError, match="sum to less than 1"):
        load("image-folder", "train", root=str(tmp_path), val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="unknown color"):
        load("image-folder", "train", root=str(tmp_path), color="cmyk")
    with pytest.raises(DataError) as err:
        load("image-folder", "train", root=str(tmp_path / "nowhere"))
    assert_one_line(err, "nowhere", "--data-root")
    with pytest.raises(DataError) as err:
        load("image-folder", "train")
    assert_one_line(err, "no data root given", "--data-root")


def test_mixed_sizes_need_a_size(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 2, "b": 2})
    odd = tmp_path / "b" / "odd.png"
    write_png(odd, 100, (7, 9))
    with pytest.raises(DataError) as err:
        load("image-folder", "train", root=str(tmp_path), size=None, val_fraction=0.0, test_fraction=0.0)
    assert_one_line(err, str(odd), "pass size=")


def test_covid_ct_end_to_end(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "data", COVID)
    run, acc = train_and_attack(tmp_path, "covid-ct", tmp_path / "data", {"size": 16})
    assert run.task.kind == "binary" and len(run.history) == 1
    assert 0.0 <= acc["fgsm"] <= 1.0 and 0.0 <= acc["clean"] <= 1.0 and 0.0 < acc["max_change"] <= 0.05 + 1e-6


def test_stratified_split_counts_by_hand() -> None:
    from medrobust.data.splits import stratified_split

    labels = np.array([0] * 10 + [1] * 20)
    parts = stratified_split(labels, val=0.1, test=0.2, seed=4)
    counts = {s: np.bincount(labels[p], minlength=2).tolist() for s, p in parts.items()}
    assert counts == {"train": [7, 14], "val": [1, 2], "test": [2, 4]}
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(30))
    again = stratified_split(labels, val=0.1, test=0.2, seed=4)
    assert all(np.array_equal(parts[s], again[s]) for s in parts)


def test_all_files_bad_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    files = write_class_folders(tmp_path, {"a": 2, "b": 2})
    for path in files["a"] + files["b"]:
        path.write_bytes(b"not a png")
    with pytest.raises(DataError) as err:
        load("image-folder", "train", root=str(tmp_path), skip_bad=True, val_fraction=0.0, test_fraction=0.0)
    assert_one_line(err, "all 4 image files were bad")


def test_string_classes_and_non_numeric_size(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 2, "b": 2, "ab": 2})
    with pytest.raises(DataError) as err:  # "ab" is one class, not the classes "a" and "b"
        load("image-folder", "train", root=str(tmp_path), classes="ab")
    assert_one_line(err, str(tmp_path / "a"), "not in the class list ['ab']")
    with pytest.raises(ConfigError) as err:
        load("image-folder", "train", root=str(tmp_path), size="abc")
    assert_one_line(err, "image size must be", "'abc'")
