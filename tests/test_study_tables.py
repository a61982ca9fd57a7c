"""The COVID chest X-ray study layout: its two tables from hand-made results, the reliability bins under attack
that the runner records, and ``medrobust compare --layout study`` end to end on tiny runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import blobs
from medrobust import models
from medrobust.cli import main
from medrobust.evaluation import Results, RobustnessCheckWarning, ThreatSpec, evaluate
from medrobust.reporting.comparison import Entry
from medrobust.reporting.study import (
    PUBLISHED_ACCURACY,
    accuracy_table,
    attack_level_index,
    calibration_table,
    published_tables,
    study_tables,
    write_study,
)


def _threat(name: str, kind: str, levels: list[float], acc: list[float], norm: str | None = None) -> dict:
    return {"threat": name, "name": name, "kind": kind, "norm": norm, "levels": levels, "accuracy": acc,
            "mean_accuracy": sum(acc) / len(acc)}  # fmt: skip


def _entry(name: str, clean: float) -> Entry:
    threats = [
        _threat("pgd", "attack", [1 / 255, 2 / 255], [0.5, 0.3], "linf"),
        _threat("gaussian", "noise", [0.1, 1.0], [0.8, 0.6]),
        _threat("speckle", "noise", [0.1, 1.0], [0.9, 0.7]),
    ]  # no salt_pepper: a missing column
    summary = {"clean_accuracy": clean, "majority_rate": 0.5, "clean": {"rmsce": 0.0714, "entropy": 0.25},
               "threats": threats}  # fmt: skip
    return Entry(name, "standard", Results(rows=[], summary=summary))


def test_accuracy_and_calibration_tables_hold_means_in_percent() -> None:
    acc = accuracy_table([_entry("a", 0.958), _entry("b", 0.9)])
    assert acc.header[3] == "Adversarial (pgd linf 1/255…2/255)"
    row = acc.rows[0]
    assert row[:3] == ("a", "standard", pytest.approx(95.8))
    assert row[3] == pytest.approx(40.0) and row[4] == pytest.approx(70.0) and row[6] == pytest.approx(80.0)
    assert math.isnan(row[5]) and row[7] == "ok"
    assert "| a   | standard | 95.80 |" in acc.to_markdown() and "|   — |" in acc.to_markdown()
    cal = calibration_table([_entry("a", 0.958)])
    assert cal.rows[0][2] == pytest.approx(7.14) and cal.rows[0][3] == 0.25
    assert "7.14" in cal.to_latex() and cal.to_csv().splitlines()[1].startswith("a,standard,7.14")


def test_published_tables_are_the_papers() -> None:
    acc, cal = published_tables()
    assert acc.rows[3] == ("RobustAugMix", 96.27, 82.10, 83.56, 69.75, 94.86) and len(acc.rows) == 4
    assert cal.rows[0] == ("Standard", 7.14, 2.96) and PUBLISHED_ACCURACY[1][2] == 89.83
    assert attack_level_index([1, 2, 3, 4, 5]) == 2 and attack_level_index([1]) == 0
    assert attack_level_index([0, 1, 2, 3, 4, 5]) == 3 and attack_level_index([0]) == 0  # ε = 0 is not an attack


@pytest.fixture(scope="module")
def evaluated() -> Results:
    torch.manual_seed(0)
    data = blobs(24, size=8)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
    grid = [ThreatSpec.attack("pgd", norm="linf", eps=[1 / 255, 8 / 255], steps=2),
            ThreatSpec.noise("gaussian", [0.1, 1.0]), ThreatSpec.noise("salt_pepper", [0.5])]  # fmt: skip
    with pytest.warns(RobustnessCheckWarning):  # an untrained model: the majority check fails
        return evaluate(model, data, data.task(), grid, progress=False)


def test_runner_records_reliability_bins_under_attack(evaluated: Results) -> None:
    (attack,) = [t for t in evaluated.summary["threats"] if t["kind"] == "attack"]
    assert len(attack["reliability"]) == 2
    for k, bins in enumerate(attack["reliability"]):
        assert sum(bins["count"]) == 24 and len(bins["edges"]) == 16
        accuracy = evaluated.value("pgd", "accuracy", attack["levels"][k], "linf")
        hits = sum(a * c for a, c in zip(bins["accuracy"], bins["count"]) if c)
        assert hits / 24 == pytest.approx(accuracy)  # the bins describe the attacked predictions
    assert all("reliability" not in t for t in evaluated.summary["threats"] if t["kind"] == "noise")


def test_write_study_tables_and_reliability_diagrams(
    evaluated: Results, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_study([Entry("aug", "augmix", evaluated)], tmp_path)
    assert capsys.readouterr().out == ""  # the library writes; the command prints
    text = "\n".join(t.to_markdown() for t in study_tables([Entry("aug", "augmix", evaluated)]))
    assert "robustness: accuracy in %" in text and "published Table II" in text and "RMSCE (%)" in text
    for name in ("study_accuracy.md", "study_accuracy.csv", "study_accuracy.tex", "study_calibration.tex",
                 "published_accuracy.md", "reliability_aug_clean.png", "reliability_aug_pgd.png"):  # fmt: skip
        assert (tmp_path / name).is_file() and tmp_path / name in written, name


def test_compare_offers_the_study_layout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "--layout {table,study}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["compare", "x", "--layout", "paper"])
    assert bad.value.code == 2 and "invalid choice: 'paper'" in capsys.readouterr().err


def test_write_study_without_reliability_bins(tmp_path: Path) -> None:
    written = write_study([_entry("a", 0.9)], tmp_path)
    assert all(p.suffix != ".png" for p in written) and (tmp_path / "study_calibration.csv").is_file()
