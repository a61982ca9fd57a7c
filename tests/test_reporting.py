"""Tables (Markdown, CSV, LaTeX) and figures (PNG) as views of Results."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from medrobust.evaluation import Results
from medrobust.reporting import (
    Table,
    format_level,
    metrics_table,
    reliability_diagram,
    robustness_curves,
    summary_table,
    threat_table,
)

EPS = [0.0, 1 / 255, 8 / 255]


def results(acc: list[float], clean: float = 0.9) -> Results:
    rows = [
        {"threat": "clean", "norm": None, "level": 0.0, "metric": m, "value": v, "n": 20}
        for m, v in (("accuracy", clean), ("auc", float("nan")), ("rmsce", 0.05), ("ece", 0.04))
    ]
    rows += [
        {"threat": "pgd", "norm": "linf", "level": e, "metric": "accuracy", "value": a, "n": 20}
        for e, a in zip(EPS, acc)
    ]
    rows += [{"threat": "pgd", "norm": "linf", "level": e, "metric": "auc", "value": 0.5, "n": 20} for e in EPS]
    threat = {
        "threat": "pgd",
        "kind": "attack",
        "name": "pgd",
        "norm": "linf",
        "levels": EPS,
        "accuracy": acc,
        "clean_accuracy": clean,
        "auc_robustness": 0.5,
        "mean_accuracy": sum(acc[1:]) / 2,
    }
    reliability = {"edges": [0, 0.5, 1], "confidence": [None, 0.8], "accuracy": [None, 0.7], "count": [0, 20]}
    summary = {
        "clean_accuracy": clean,
        "majority_rate": 0.5,
        "clean": {"rmsce": 0.05, "ece": 0.04},
        "threats": [threat],
        "reliability": reliability,
    }
    return Results(rows=rows, summary=summary, n=20, model="small_cnn")


def test_format_level() -> None:
    assert [format_level(v) for v in (0.0, 0.1, 1 / 255, 8 / 255, 0.2, 1 / 3, 2.5)] == [
        "0", "0.1", "1/255", "8/255", "0.2", "0.333333", "2.5",
    ]  # fmt: skip


def test_threat_table_formats() -> None:
    t = threat_table(results([0.9, 0.6, 0.1]), "pgd", "linf", metrics=("accuracy", "auc", "missing"))
    assert t.header == ("threat", "level", "accuracy", "auc")
    md = t.to_markdown()
    assert "| pgd    | 8/255 |   0.1000 | 0.5000 |" in md and "—" in md  # NaN clean AUC
    assert md.startswith("**small_cnn under pgd (linf)**")
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert rows[0] == ["threat", "level", "accuracy", "auc"]
    assert rows[1] == ["clean", "0.0", "0.9", ""]
    assert float(rows[3][1]) == pytest.approx(1 / 255)
    tex = t.to_latex()
    assert "\\begin{tabular}{lrrr}" in tex and "pgd & 8/255 & 0.1000 & 0.5000 \\\\" in tex and "--" in tex


def test_latex_escapes_and_save(tmp_path: Path) -> None:
    t = Table(("run_name", "50%"), (("a&b", 0.5),), ("text", "value"), "x_y")
    tex = t.to_latex()
    assert "run\\_name & 50\\%" in tex and "a\\&b & 0.5000" in tex and "% x\\_y" in tex
    paths = t.save(tmp_path / "out" / "table")
    assert sorted(p.name for p in paths) == ["table.csv", "table.md", "table.tex"]
    assert all(p.read_text() for p in paths)


def test_metrics_and_summary_tables() -> None:
    a, b = results([0.9, 0.6, 0.1]), results([0.8, 0.7, 0.5], clean=0.8)
    m = metrics_table(a)
    assert m.header[:3] == ("threat", "norm", "level") and len(m.rows) == 4
    s = summary_table([("standard", a), ("robust", b)])
    assert s.header == ("run", "clean acc", "majority", "pgd linf AUC-rob", "pgd linf mean acc")
    assert s.rows[1][0] == "robust" and s.rows[1][1] == 0.8 and s.rows[1][4] == pytest.approx(0.6)


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_plots(tmp_path: Path) -> None:
    runs = [("standard", results([0.9, 0.6, 0.1])), ("robust", results([0.8, 0.7, 0.5], clean=0.8))]
    assert _is_png(robustness_curves(runs, tmp_path / "curve.png", threat="pgd", norm="linf"))
    assert _is_png(reliability_diagram(runs[0][1], tmp_path / "rel.png"))
    with pytest.raises(ValueError, match="no rows"):
        robustness_curves(runs, tmp_path / "x.png", threat="fgsm")
