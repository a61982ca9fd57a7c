"""dicom-folder and nifti-folder: pydicom's and nibabel's shipped test files, windowing, series, bad files."""

from __future__ import annotations

import importlib.resources
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataset_files import train_and_attack, truncate, write_labels_csv
from medrobust.data import load
from medrobust.errors import ConfigError, DataError

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")
from pydicom.data import get_testdata_file  # noqa: E402

NIB_DATA = importlib.resources.files("nibabel") / "tests" / "data"


def assert_one_line(err: pytest.ExceptionInfo[Any], *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def ct_copy(path: Path, *, offset: int = 0, z: float | None = None, **attrs: Any) -> np.ndarray:
    """A copy of pydicom's CT_small.dcm with ``offset`` added to the stored values; returns those values."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    values = (ds.pixel_array.astype(np.int32) + offset).clip(-32768, 32767).astype(np.int16)
    ds.PixelData = values.tobytes()
    if z is not None:
        ds.ImagePositionPatient = [0.0, 0.0, z]
    for key, value in attrs.items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path))
    return values


def ct_folder(root: Path, n: int = 4) -> list[np.ndarray]:
    """``n`` CT_small copies (label ``lesion`` for odd k) with a split column: the last two are val and test."""
    values = [ct_copy(root / f"ct{k}.dcm", offset=300 * (k % 2)) for k in range(n)]
    splits = ["train"] * (n - 2) + ["val", "test"]
    rows = [{"file": f"ct{k}.dcm", "label": ["normal", "lesion"][k % 2], "split": s} for k, s in enumerate(splits)]
    write_labels_csv(root / "labels.csv", rows)
    return values


def test_ct_small_rescale_and_hu_window(tmp_path: Path) -> None:
    values = ct_folder(tmp_path)
    ds = load("dicom-folder", "test", root=str(tmp_path), window=[40, 400], classes=["normal", "lesion"])
    hu = values[3].astype(np.float64) * 1.0 - 1024.0  # RescaleSlope 1, RescaleIntercept -1024
    expected = np.clip((hu - (40 - 200)) / 400, 0, 1)
    assert ds.images.shape == (1, 1, 128, 128) and ds.images.dtype.is_floating_point
    np.testing.assert_allclose(ds.images[0, 0].numpy(), expected, atol=1e-6)
    assert int(ds.targets[0]) == 1 and ds.info.class_names == ("normal", "lesion")
    assert "split" in ds.info.extra["split_rule"] and ds.info.extra["window"] == [40, 400]


def test_dicom_window_percentile_and_monochrome1(tmp_path: Path) -> None:
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "mr.dcm")
    ct_copy(tmp_path / "inv.dcm", PhotometricInterpretation="MONOCHROME1")
    write_labels_csv(tmp_path / "labels.csv", [{"file": "mr.dcm", "label": "a"}, {"file": "inv.dcm", "label": "b"}])
    opts: dict[str, Any] = {"root": str(tmp_path), "size": 32, "val_fraction": 0.0, "test_fraction": 0.0}
    mr = pydicom.dcmread(tmp_path / "mr.dcm").pixel_array.astype(np.float64)
    ds = load("dicom-folder", "train", window="dicom", classes=["a"], skip_bad=True, **opts)
    full = load("dicom-folder", "train", window="dicom", size=None, classes=["a"], skip_bad=True, root=str(tmp_path),
                val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    np.testing.assert_allclose(full.images[0, 0].numpy(), np.clip((mr - (600 - 800)) / 1600, 0, 1), atol=1e-6)
    assert ds.images.shape == (1, 1, 32, 32)
    inv = load("dicom-folder", "train", classes=["b"], skip_bad=True, size=None, root=str(tmp_path),
               val_fraction=0.0, test_fraction=0.0, window="minmax")  # fmt: skip
    raw = pydicom.dcmread(tmp_path / "inv.dcm").pixel_array.astype(np.float64)
    expected = 1 - (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(inv.images[0, 0].numpy(), expected, atol=1e-6)
    pct = load("dicom-folder", "train", classes=["b"], skip_bad=True, size=None, root=str(tmp_path),
               val_fraction=0.0, test_fraction=0.0, percentiles=[5, 95])  # fmt: skip
    lo, hi = np.percentile(raw - 1024, [5, 95])
    np.testing.assert_allclose(pct.images[0, 0].numpy(), 1 - np.clip((raw - 1024 - lo) / (hi - lo), 0, 1), atol=1e-5)
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", window="dicom", classes=["b"], **opts)
    assert_one_line(err, "labels.csv:2", "label 'a' is not in the class list")
    write_labels_csv(tmp_path / "ct.csv", [{"file": "inv.dcm", "label": "b"}])
    with pytest.raises(DataError) as err:  # CT_small has no window of its own
        load("dicom-folder", "train", window="dicom", labels="ct.csv", **opts)
    assert_one_line(err, str(tmp_path / "inv.dcm"), "no WindowCenter/WindowWidth")
    with pytest.raises(ConfigError, match="window must be"):
        load("dicom-folder", "train", window=[40, 0], **opts)


def test_series_folder_is_sorted_by_position_and_checked(tmp_path: Path) -> None:
    slices = {z: ct_copy(tmp_path / "s1" / f"{name}.dcm", offset=100 * z, z=float(z))
              for name, z in (("b", 2), ("a", 0), ("c", 1))}  # fmt: skip
    for k in range(3):
        ct_copy(tmp_path / "s2" / f"{k}.dcm", z=float(k))
    rows = [{"file": "s1", "label": "x", "split": "train"}, {"file": "s2", "label": "y", "split": "test"}]
    write_labels_csv(tmp_path / "labels.csv", rows)
    ds = load("dicom-folder", "train", root=str(tmp_path), dims=3, window="minmax")
    hu = np.stack([slices[z] for z in (0, 1, 2)]).astype(np.float64)
    np.testing.assert_allclose(ds.images[0, 0].numpy(), (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)
    assert ds.images.shape == (1, 1, 3, 128, 128) and ds.info.spatial == (3, 128, 128)
    odd = tmp_path / "s2" / "1.dcm"
    small = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    small.ImagePositionPatient = [0.0, 0.0, 1.0]
    small.save_as(str(odd))
    with pytest.raises(DataError) as err:
        load("dicom-folder", "test", root=str(tmp_path), dims=3)
    assert_one_line(err, str(odd), "slice shape (64, 64)", "(128, 128)")
    write_labels_csv(tmp_path / "single.csv", [{"file": "s1/a.dcm", "label": "x", "split": "train"}])
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path), labels="single.csv", dims=3)
    assert_one_line(err, str(tmp_path / "s1" / "a.dcm"), "single 2D slice")


def test_bad_dicom_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ct_folder(tmp_path, n=6)
    truncate(tmp_path / "ct1.dcm")
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path))
    assert_one_line(err, str(tmp_path / "ct1.dcm"), "--skip-bad")
    ds = load("dicom-folder", "train", root=str(tmp_path), skip_bad=True)
    assert len(ds) == 3 and ds.info.extra["skipped_bad"] == 1
    assert "skipped 1 bad file(s)" in capsys.readouterr().err
    (tmp_path / "ct2.dcm").unlink()
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path), skip_bad=False, classes=["normal", "lesion"])
    assert_one_line(err, str(tmp_path / "ct1.dcm"))
    with pytest.raises(DataError) as err:
        load("dicom-folder", "val", root=str(tmp_path), labels="missing.csv")
    assert_one_line(err, "missing.csv", "labels CSV not found")


def test_missing_file_unknown_label_bad_split(tmp_path: Path) -> None:
    ct_folder(tmp_path)
    rows = [{"file": "ct0.dcm", "label": "normal", "split": "train"}, {"file": "gone.dcm", "label": "normal",
            "split": "train"}, {"file": "ct1.dcm", "label": "tumour", "split": "test"}]  # fmt: skip
    write_labels_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path), classes=["normal", "lesion"], skip_bad=False)
    assert_one_line(err, "labels.csv:4", "label 'tumour' is not in the class list")
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path))
    assert_one_line(err, str(tmp_path / "gone.dcm"), "not found", "line 3")
    with pytest.raises(DataError) as err:
        load("dicom-folder", "val", root=str(tmp_path))
    assert_one_line(err, "the val split is empty")
    rows[0]["split"] = "training"
    write_labels_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path))
    assert_one_line(err, "labels.csv:2", "'training' is not train, val or test")


def test_missing_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ct_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path))
    assert_one_line(err, "dicom-folder needs the pydicom package", "pip install 'medrobust[dicom]'")
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(DataError) as err:
        load("nifti-folder", "train", root=str(tmp_path))
    assert_one_line(err, "nifti-folder needs the nibabel package")


def test_real_nifti_files_load_canonical(tmp_path: Path) -> None:
    for name in ("anatomical.nii", "standard.nii.gz", "example4d.nii.gz"):
        shutil.copy(str(NIB_DATA / name), tmp_path / name)
    shutil.copy(str(NIB_DATA / "anatomical.nii"), tmp_path / "anatomical2.nii")
    rows = [{"file": "anatomical.nii", "label": "0", "split": "train"},
            {"file": "anatomical2.nii", "label": "1", "split": "train"},
            {"file": "standard.nii.gz", "label": "1", "split": "test"}]  # fmt: skip
    write_labels_csv(tmp_path / "labels.csv", rows)
    ds = load("nifti-folder", "train", root=str(tmp_path), window="minmax")
    canon = nib.as_closest_canonical(nib.load(str(tmp_path / "anatomical.nii"))).get_fdata().transpose(2, 1, 0)
    assert ds.images.shape == (2, 1, 25, 41, 33) and ds.info.class_names == ("0", "1")
    np.testing.assert_allclose(ds.images[0, 0].numpy(), (canon - canon.min()) / np.ptp(canon), atol=1e-6)
    test = load("nifti-folder", "test", root=str(tmp_path), size=8)
    assert test.images.shape == (1, 1, 8, 8, 8) and float(test.images.amax()) <= 1.0
    middle = load("nifti-folder", "train", root=str(tmp_path), dims=2, window="minmax")
    assert middle.images.shape == (2, 1, 41, 33)
    np.testing.assert_allclose(middle.images[0, 0].numpy(), _unit(canon[12]), atol=1e-6)  # middle of 25 slices
    rows[2] = {"file": "example4d.nii.gz", "label": "1", "split": "test"}
    write_labels_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError) as err:
        load("nifti-folder", "test", root=str(tmp_path))
    assert_one_line(err, str(tmp_path / "example4d.nii.gz"), "3D volumes")
    rows[2] = {"file": "standard.nii.gz", "label": "1", "split": "train"}
    write_labels_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DataError) as err:
        load("nifti-folder", "train", root=str(tmp_path))
    assert_one_line(err, str(tmp_path / "standard.nii.gz"), "differs from the first file's", "pass size=")


def _unit(a: np.ndarray) -> np.ndarray:
    return (a - a.min()) / np.ptp(a)


def test_truncated_nifti(tmp_path: Path) -> None:
    shutil.copy(str(NIB_DATA / "anatomical.nii"), tmp_path / "a.nii")
    truncate(tmp_path / "a.nii")
    write_labels_csv(tmp_path / "labels.csv", [{"file": "a.nii", "label": "x", "split": "train"}])
    with pytest.raises(DataError) as err:
        load("nifti-folder", "train", root=str(tmp_path))
    assert_one_line(err, str(tmp_path / "a.nii"), "not a readable NIfTI file")


def test_nifti_volumes_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(16):
        vol = rng.normal(100 + 80 * (k % 2), 10, (10, 10, 10)).astype(np.float32)
        nib.Nifti1Image(vol, np.eye(4)).to_filename(str(tmp_path / f"v{k}.nii.gz"))
        rows.append({"file": f"v{k}.nii.gz", "label": ["healthy", "sick"][k % 2], "patient": f"p{k // 2}"})
    write_labels_csv(tmp_path / "labels.csv", rows)
    opts = {"size": 8, "window": [140, 200], "group_column": "patient", "val_fraction": 0.25, "test_fraction": 0.25}
    run, acc = train_and_attack(tmp_path, "nifti-folder", tmp_path, opts)
    assert run.task.kind == "binary" and run.dataset("test").images.shape[1:] == (1, 8, 8, 8)
    assert 0.0 <= acc["fgsm"] <= 1.0 and 0.0 <= acc["clean"] <= 1.0 and 0.0 < acc["max_change"] <= 0.05 + 1e-6


def test_dicom_slices_end_to_end(tmp_path: Path) -> None:
    for k in range(12):
        ct_copy(tmp_path / f"c{k}.dcm", offset=400 * (k % 2))
    write_labels_csv(tmp_path / "labels.csv", [{"file": f"c{k}.dcm", "label": str(k % 2)} for k in range(12)])
    run, acc = train_and_attack(tmp_path, "dicom-folder", tmp_path, {"size": 16, "window": [0, 2000]})
    assert run.task.kind == "binary" and run.dataset("val").images.shape[1:] == (1, 16, 16)
    assert 0.0 <= acc["fgsm"] <= 1.0 and 0.0 < acc["max_change"] <= 0.05 + 1e-6


def test_series_sorts_by_position_then_instance_number(tmp_path: Path) -> None:
    spec = {"a": (1.0, 1), "b": (0.0, 3), "c": (0.0, 2)}  # same z for b and c: InstanceNumber decides
    slices = {name: ct_copy(tmp_path / "s" / f"{name}.dcm", offset=100 * i, z=z, InstanceNumber=inst)
              for i, (name, (z, inst)) in enumerate(spec.items())}  # fmt: skip
    write_labels_csv(tmp_path / "labels.csv", [{"file": "s", "label": "x"}])
    ds = load("dicom-folder", "train", root=str(tmp_path), dims=3, window="minmax", val_fraction=0.0,
              test_fraction=0.0)  # fmt: skip
    hu = np.stack([slices[k] for k in ("c", "b", "a")]).astype(np.float64)
    np.testing.assert_allclose(ds.images[0, 0].numpy(), (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)


def test_bad_window_percentiles_and_size_are_config_errors(tmp_path: Path) -> None:
    ct_folder(tmp_path)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"window": [40, "x"]}, "window must be"), ({"window": [40, 400, 1]}, "window must be"),
        ({"window": "hu"}, "window must be"), ({"percentiles": [5]}, "percentiles must be"),
        ({"percentiles": [-1, 50]}, "percentiles must be"), ({"percentiles": [5, 101]}, "percentiles must be"),
        ({"percentiles": [90, 10]}, "percentiles must be"), ({"percentiles": "ab"}, "percentiles must be"),
        ({"size": "abc"}, "size must be"), ({"size": [8, "x"]}, "size must be"),
    ]  # fmt: skip
    for options, message in bad:
        with pytest.raises(ConfigError) as err:
            load("dicom-folder", "train", root=str(tmp_path), **options)
        assert_one_line(err, message)
    ds = load("dicom-folder", "test", root=str(tmp_path), size="8", percentiles=["1", 99])
    assert ds.images.shape == (1, 1, 8, 8)


def test_short_row_named_split_column_and_string_classes(tmp_path: Path) -> None:
    ct_folder(tmp_path)
    (tmp_path / "short.csv").write_text("file,label,split\nct0.dcm,normal,train\nct1.dcm\n")
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path), labels="short.csv")
    assert_one_line(err, "short.csv:3", "no value for label, split")
    with pytest.raises(DataError) as err:
        load("dicom-folder", "train", root=str(tmp_path), split_column="fold")
    assert_one_line(err, "labels.csv", "missing column(s) fold")
    ds = load("dicom-folder", "train", root=str(tmp_path), classes="normal", skip_bad=True, size=8)
    assert ds.info.class_names == ("normal",) and ds.targets.tolist() == [0]
