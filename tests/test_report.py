"""``medrobust report``: one self-contained HTML file per run (or a comparison), the card written by ``evaluate``,
``compare --leaderboard``, the gallery of dense tasks, and the one-line user errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from medrobust.cli import main
from medrobust.config import ExperimentConfig
from medrobust.evaluation.results import Results
from medrobust.reporting.card import load_card, rank_cards
from medrobust.reporting.gallery import fingerprint, gallery_figure
from medrobust.reporting.html import SECTIONS
from medrobust.tasks import LandmarkTask, SegmentationTask
from medrobust.training.runs import Run
from report_runs import EVAL

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runs(evaluated_runs: dict[str, Path]) -> dict[str, Path]:
    return evaluated_runs


def images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_report_is_one_self_contained_file(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(runs["ima"]), "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f">{section}</h2>" in page, section
    assert "<script" not in page.lower() and not re.search(r"(src|href)=\"(https?:)?//", page)
    assert not re.search(r"url\(", page)  # no CSS that fetches anything
    srcs = images(page)
    assert len(srcs) >= 8
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert page.count('alt="margins_epoch') == 2  # IMA's histograms of both epochs
    assert 'alt="example gallery"' in page and 'alt="ROC under pgd"' in page
    res = Results.load(runs["ima"] / "results.json")
    assert f"{res.summary['threats'][0]['auc_robustness']:.4f}" in page  # AUC-robustness from results.json
    assert "per class, one-vs-rest" in page and "config.yaml" in page


def test_evaluate_writes_a_card_equal_to_the_results(runs: dict[str, Path]) -> None:
    card, res = load_card(runs["standard"]), Results.load(runs["standard"] / "results.json")
    eps = res.summary["threats"][0]["levels"][-1]
    assert card["clean_accuracy"] == res.value("clean", "accuracy")
    assert card["worst_robust_accuracy"] == res.value("pgd", "accuracy", eps, "l2")
    assert card["worst_attack_metrics"]["sensitivity"] == res.value("pgd", "sensitivity", eps, "l2")
    assert card["worst_attack_metrics"]["specificity"] == res.value("pgd", "specificity", eps, "l2")
    assert card["unreliable"] == bool(res.failed_checks)
    assert (runs["standard"] / "card.md").read_text().startswith("# Robustness card: standard")


def test_comparison_report_from_a_folder_and_a_results_file(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    args = ["report", str(runs["standard"]), str(runs["ima"] / "results.json"), "--html", str(out), "--examples", "1"]
    assert main(args) == 0
    page = out.read_text(encoding="utf-8")
    assert "<h2 id=comparison>Comparison</h2>" in page and "leaderboard" in page
    assert '<h2 id="standard">standard</h2>' in page and '<h2 id="ima">ima</h2>' in page
    assert page.count(">Example gallery</h3>") == 2


def test_report_without_the_model(runs: dict[str, Path], tmp_path: Path) -> None:
    lone = tmp_path / "elsewhere" / "results.json"
    lone.parent.mkdir()
    doc = json.loads((runs["standard"] / "results.json").read_text())
    doc["config"]["run"] = str(tmp_path / "gone")
    lone.write_text(json.dumps(doc))
    assert main(["report", str(lone)]) == 0
    page = (lone.parent / "report.html").read_text(encoding="utf-8")
    assert "the gallery needs the run&#x27;s checkpoint" in page and "not computed" in page
    assert main(["report", str(runs["standard"]), "--no-gallery", "--html", str(tmp_path / "ng.html")]) == 0
    assert 'alt="example gallery"' not in (tmp_path / "ng.html").read_text(encoding="utf-8")


def test_compare_leaderboard(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", str(runs["standard"]), str(runs["ima"]), *EVAL, "--leaderboard", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "leaderboard (ranked by worst-case robust accuracy)" in text
    cards = {name: load_card(runs[name]) for name in runs}
    order = [c["name"] for c in rank_cards(list(cards.values()))]  # the rule itself: tests/test_report_card.py
    board = (out / "leaderboard.md").read_text()
    assert board.index(f"| {order[0]} ") < board.index(f"| {order[1]} ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "/nonexistent/run"], "not found"),
        (["report", "."], "holds no results.json"),
        (["report", "/a", "/b", "--log", "mlflow"], "--log records one run"),
        (["report", "/a", "--examples", "-1"], "--examples must be >= 0"),
    ],
)
def test_user_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_fingerprint_follows_the_data() -> None:
    x, y = torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 0])
    assert fingerprint(x, y) == fingerprint(x.clone(), y.clone())
    assert fingerprint(x, y) != fingerprint(x, torch.tensor([0, 1, 1]))
    assert fingerprint(x, y) != fingerprint(x.reshape(3, 1, 2, 8), y)


@pytest.mark.parametrize("kind", ["segmentation", "landmark"])
def test_gallery_of_dense_tasks(kind: str) -> None:
    torch.manual_seed(0)
    task = SegmentationTask(num_classes=2) if kind == "segmentation" else LandmarkTask(num_landmarks=2)
    model = nn.Conv2d(1, 2, 3, padding=1).eval()
    x = torch.rand(2, 1, 16, 16)
    y = (x[:, 0] > 0.5).long() if kind == "segmentation" else torch.tensor([[[4.0, 5.0], [10.0, 9.0]]] * 2)
    run = Run(Path("."), ExperimentConfig(), model, task, [])
    threat = {"kind": "attack", "name": "pgd", "norm": "l2", "levels": [0.0, 0.5], "options": {"steps": 2}}
    png = gallery_figure(run, threat, x, y, [0.5])
    assert png.startswith(PNG) and len(png) > 5000
