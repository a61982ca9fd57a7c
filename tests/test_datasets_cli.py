"""``medrobust list datasets`` (task kind, files present, default root) and ``train --data-root --skip-bad``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataset_files import truncate, write_class_folders
from medrobust.cli import main
from medrobust.data import DATASETS
from medrobust.data.paths import data_root, presence

REAL = ("medmnist", "covid-ct", "covid-cxr", "mrnet", "image-folder", "dicom-folder", "nifti-folder")


def table_rows(text: str) -> dict[str, list[str]]:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    header = rows[0]
    return {r[0]: dict(zip(header, r)) for r in rows[2:]}  # type: ignore[misc]


def test_every_dataset_is_listed_with_kind_and_presence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDROBUST_DATA", str(tmp_path))
    write_class_folders(tmp_path / "covid-ct", {"non-COVID": 2, "COVID": 3})
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "organmnist3d.npz", train_images=np.zeros((1, 28, 28, 28), np.uint8))
    assert main(["list", "datasets"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(REAL) <= set(rows) and set(rows) == set(DATASETS.names())
    assert rows["covid-ct"]["files present"] == "yes (3 COVID, 2 non-COVID)"
    assert rows["medmnist"]["files present"].startswith("yes: organmnist3d")
    assert rows["covid-cxr"]["files present"].startswith("no (")
    assert rows["image-folder"]["files present"] == "needs --data-root"
    assert rows["phantom-ct"]["files present"] == "embedded"
    for name in REAL:
        assert rows[name]["task_kind"], name
    assert main(["list", "datasets", "--data-root", str(tmp_path / "covid-ct")]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows["image-folder"]["files present"] == "yes (2 class folders)"
    assert rows["dicom-folder"]["files present"].startswith("no (labels.csv missing")


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MEDROBUST_DATA", raising=False)
    assert data_root() == Path.home() / ".medrobust" / "data"
    monkeypatch.setenv("MEDROBUST_DATA", str(tmp_path))
    assert data_root() == tmp_path and presence("covid-ct").startswith("no (")


def test_train_skip_bad_and_bad_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = write_class_folders(tmp_path / "data", {"a": 8, "b": 8})
    truncate(files["b"][5])
    base = ["train", "--dataset", "image-folder", "--data-root", str(tmp_path / "data"), "--model", "small_cnn",
            "--set", "data.options={size: 12}", "--set", "model.options={width: 4}", "--epochs", "1",
            "--batch-size", "4", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert str(files["b"][5]) in err and "--skip-bad" in err
    assert main([*base, "--out", str(tmp_path / "r2"), "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 bad file(s)" in captured.err
    assert json.loads((tmp_path / "r2" / "metrics.json").read_text())["n"] >= 1
    assert "skip_bad: true" in (tmp_path / "r2" / "config.yaml").read_text()
    assert main([*base[:4], str(tmp_path / "nowhere"), *base[5:], "--out", str(tmp_path / "r3")]) == 2
    assert "is not a folder" in capsys.readouterr().err
