"""covid-cxr: Cohen et al.'s metadata.csv + images; label choice, view filter, split by patientid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataset_files import cohen_rows, train_and_attack, write_cohen, write_cohen_images
from medrobust.data import load
from medrobust.data.covid_cxr import label_of
from medrobust.errors import ConfigError, DataError


def assert_one_line(err: pytest.ExceptionInfo[Any], *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.fixture
def cohen(tmp_path: Path) -> Path:
    root = tmp_path / "covid-chestxray-dataset"
    rows = cohen_rows()
    write_cohen(root, rows)
    write_cohen_images(root, rows)
    return root


def test_label_of_reads_the_hierarchy() -> None:
    assert label_of("Pneumonia/Viral/COVID-19", "covid", None) == "COVID-19"
    assert label_of("Pneumonia/Viral/SARS", "covid", None) == "other"
    assert label_of("Pneumonia/Viral/COVID-19", "finding", 2) == "Pneumonia/Viral"
    assert label_of("No Finding", "finding", 1) == "No Finding"


def test_patients_never_cross_splits_and_filters_apply(cohen: Path) -> None:
    parts = {s: load("covid-cxr", s, root=str(cohen), size=12, val_fraction=0.25, test_fraction=0.25) for s in
             ("train", "val", "test")}  # fmt: skip
    # 12 patients × 2 frontal images; the lateral view, the CT row and the 'todo' finding are excluded
    assert sum(len(p) for p in parts.values()) == 24
    info = parts["train"].info
    assert info.extra["excluded_rows"] == {"modality": 1, "view": 1, "no finding label": 1, "class not in classes": 0}
    assert (
        info.class_names == ("other", "COVID-19") and info.task_kind == "binary" and info.extra["positive_class"] == 1
    )
    assert "patientid" in info.extra["split_rule"]
    # images of one patient are identical in brightness class; recover patients through the file list instead
    sizes = info.extra["split_sizes"]
    assert sizes == {s: len(parts[s]) for s in parts}
    patients = {s: parts[s].info.extra["patients"] for s in parts}
    assert sum(patients.values()) == 12  # each patient counted in exactly one split
    for ds in parts.values():  # COVID-19 images are bright (label follows the finding)
        x = ds.images.float().mean(dim=(1, 2, 3))
        assert bool((x[ds.targets == 1] > 150).all()) and bool((x[ds.targets == 0] < 100).all())
        assert len(ds) % 2 == 0  # whole patients (2 images each)


def test_grouped_split_keeps_patients_whole() -> None:
    from medrobust.data.splits import grouped_split

    groups = [f"p{i // 3}" for i in range(60)]
    labels = np.array([(i // 3) % 2 for i in range(60)])
    parts = grouped_split(groups, labels, val=0.2, test=0.2, seed=3)
    owner = {}
    for split, idx in parts.items():
        for i in idx:
            assert owner.setdefault(groups[i], split) == split
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(60))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [36, 12, 12]


def test_finding_labels_views_and_classes(cohen: Path) -> None:
    ds = load("covid-cxr", "train", root=str(cohen), label="finding", size=8, val_fraction=0.0, test_fraction=0.0)
    assert ds.info.class_names == (
        "No Finding", "Pneumonia/Bacterial/Streptococcus", "Pneumonia/Viral/COVID-19",
    )  # fmt: skip
    assert ds.info.task_kind == "multiclass" and len(ds) == 24
    two = load("covid-cxr", "train", root=str(cohen), label="finding", depth=1, classes=["No Finding", "Pneumonia"],
               size=8, val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    assert two.info.class_names == ("No Finding", "Pneumonia") and len(two) == 24
    pa = load("covid-cxr", "train", root=str(cohen), views=["PA"], size=8, val_fraction=0.0, test_fraction=0.0)
    assert len(pa) == 12 and pa.info.extra["excluded_rows"]["view"] == 13  # 12 AP + 1 lateral
    with pytest.raises(ConfigError, match="label='finding' only"):
        load("covid-cxr", "train", root=str(cohen), classes=["a", "b"])
    with pytest.raises(ConfigError, match="'covid' or 'finding'"):
        load("covid-cxr", "train", root=str(cohen), label="severity")


def test_missing_image_is_named_or_skipped(cohen: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = cohen / "images" / "p3_1.png"
    missing.unlink()
    kwargs: dict[str, Any] = {"root": str(cohen), "size": 8, "val_fraction": 0.0, "test_fraction": 0.0}
    with pytest.raises(DataError) as err:
        load("covid-cxr", "train", **kwargs)
    assert_one_line(err, str(missing), "not found", "--skip-bad")
    ds = load("covid-cxr", "train", skip_bad=True, **kwargs)
    assert len(ds) == 23 and ds.info.extra["skipped_bad"] == 1
    assert "skipped 1 bad file(s)" in capsys.readouterr().err


def test_bad_metadata(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text("patientid,finding,view\n1,No Finding,PA\n")
    with pytest.raises(DataError) as err:
        load("covid-cxr", "train", root=str(tmp_path))
    assert_one_line(err, "metadata.csv", "missing column(s) modality, folder, filename")
    with pytest.raises(DataError) as err:
        load("covid-cxr", "train", root=str(tmp_path / "empty"))
    assert_one_line(err, "empty", "--data-root")
    rows = cohen_rows(patients=3)
    write_cohen(tmp_path / "few", rows)
    with pytest.raises(DataError) as err:
        load("covid-cxr", "val", root=str(tmp_path / "few"), val_fraction=0.05, test_fraction=0.0)
    assert_one_line(err, "the val split is empty")


def test_covid_cxr_end_to_end(cohen: Path, tmp_path: Path) -> None:
    run, acc = train_and_attack(tmp_path, "covid-cxr", cohen, {"size": 16, "views": ["PA", "AP"]})
    assert run.task.kind == "binary" and run.dataset("test").info.extra["views"] == ["PA", "AP"]
    assert 0.0 <= acc["fgsm"] <= 1.0 and 0.0 <= acc["clean"] <= 1.0 and 0.0 < acc["max_change"] <= 0.05 + 1e-6


def test_short_row_and_string_classes(cohen: Path, tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_text(
        "patientid,finding,view,modality,folder,filename\n1,No Finding,PA,X-ray,images,a.png\n2,No Finding,PA\n"
    )
    with pytest.raises(DataError) as err:
        load("covid-cxr", "train", root=str(tmp_path))
    assert_one_line(err, "metadata.csv:3", "no value for modality, folder, filename")
    one = load("covid-cxr", "train", root=str(cohen), label="finding", depth=1, classes="No Finding", size=8,
               val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    assert one.info.class_names == ("No Finding",) and len(one) == 8
