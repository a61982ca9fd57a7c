"""The dense comparison table (Dice / MRE per ε, AUC-robustness) and the Dice-vs-ε plot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from medrobust.evaluation import ThreatSpec, evaluate
from medrobust.reporting.comparison import Entry, comparison_table
from medrobust.reporting.dense import dense_plots
from test_dense_attacks import squares, unet


def entries(kind: str) -> list[Entry]:
    data = squares(6, kind=kind)
    task = data.task()
    spec = ThreatSpec.attack("pgd", norm="l2", eps=[0.0, 0.5, 1.0], steps=2)
    res = evaluate(unet(task.output_dim), data, task, [spec], progress=False, probe_n=2)
    return [Entry("a", "standard", res, 1.5), Entry("b", "pgd_at", res, 3.0)]


def test_segmentation_comparison_table_and_plot(tmp_path: Path) -> None:
    es = entries("segmentation")
    assert es[0].results.capabilities.dense and es[0].results.capabilities.headline_metrics == ("dice",)
    table = comparison_table(es)
    assert table.header == ("run", "method", "clean dice", "dice @ 0.5", "dice @ 1", "dice AUC-rob", "pred. AUC-rob",
                            "s/epoch", "status")  # fmt: skip
    threat = es[0].results.summary["threats"][0]
    row = table.rows[0]
    assert row[2] == pytest.approx(es[0].results.summary["clean"]["dice"])
    assert row[3:5] == tuple(threat["curves"]["dice"][1:])
    d0, d1, d2 = threat["curves"]["dice"]
    assert row[5] == pytest.approx(((d0 + d1) / 2 * 0.5 + (d1 + d2) / 2 * 0.5) / 1.0)  # trapezoid / max ε
    assert row[7] == 1.5 and row[8] == "ok"
    paths = dense_plots(es, tmp_path)
    assert [p.name for p in paths] == ["dice_pgd_l2.png"] and paths[0].stat().st_size > 0


def test_landmark_comparison_table() -> None:
    table = comparison_table(entries("landmark"))
    assert table.header[2:5] == ("clean mre", "mre @ 0.5", "mre @ 1")
    assert "clean sdr@2" in table.header and "sdr@2 AUC-rob" in table.header and "mre AUC-rob" not in table.header
    assert all(math.isfinite(v) for v in table.rows[0][2:5])
