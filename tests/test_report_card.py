"""The robustness card equals results.json's numbers; the leaderboard ranks by worst-case robust accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medrobust.errors import DataError
from medrobust.evaluation.results import Results
from medrobust.evaluation.summary import summarize
from medrobust.evaluation.threats import ThreatSpec
from medrobust.reporting.card import (
    CARD_SCHEMA,
    build_card,
    card_markdown,
    leaderboard,
    load_card,
    rank_cards,
    write_card,
    write_leaderboard,
)
from medrobust.tasks.records import kind_capabilities

PGD = ThreatSpec.attack("pgd", norm="linf", eps=[0, 1 / 255, 4 / 255], steps=3)
FGSM = ThreatSpec.attack("fgsm", norm="linf", eps=[0, 1 / 255, 4 / 255])
NOISE = ThreatSpec.noise("gaussian", [0.01, 0.1])


def make_results(curves: dict[str, list[float]], clean: float = 0.9, failed: tuple[str, ...] = ()) -> Results:
    """Results with the given accuracy curves per attack (``levels`` of PGD/FGSM) and a two-level noise."""
    rows = [{"threat": "clean", "norm": None, "level": 0.0, "metric": m, "value": v, "n": 10}
            for m, v in (("accuracy", clean), ("sensitivity", clean - 0.1), ("specificity", clean + 0.05))]  # fmt: skip
    grid = [ThreatSpec.clean()]
    for spec in (PGD, FGSM):
        if spec.name not in curves:
            continue
        grid.append(spec)
        for i, (level, acc) in enumerate(zip(spec.levels, curves[spec.name])):
            for metric, value in (("accuracy", acc), ("sensitivity", acc / 2 + i / 100), ("specificity", acc / 3)):
                rows.append({"threat": spec.name, "norm": "linf", "level": level, "metric": metric, "value": value,
                             "n": 10})  # fmt: skip
    grid.append(NOISE)
    rows += [{"threat": "gaussian", "norm": None, "level": v, "metric": "accuracy", "value": a, "n": 10}
             for v, a in ((0.01, 0.8), (0.1, 0.6))]  # fmt: skip
    targets = torch.tensor([0] * 4 + [1] * 6)
    checks = [{"name": n, "passed": n not in failed, "message": "m"} for n in ("logits", *failed)]
    summary = summarize(rows, grid, targets, None, kind_capabilities("binary"))
    return Results(rows=rows, summary=summary, checks=checks, n=10,
                   task={"kind": "binary"}, dataset="toy", split="test", model="small_cnn", method="standard",
                   config={"threats": [s.to_dict() for s in grid]}, seed=3)  # fmt: skip


def test_card_numbers_equal_the_results() -> None:
    res = make_results({"pgd": [0.9, 0.5, 0.1], "fgsm": [0.9, 0.6, 0.3]}, failed=("monotone[pgd/linf]",))
    card = build_card(res, "toy-run")
    eps = 4 / 255
    assert card["schema"] == CARD_SCHEMA and card["name"] == "toy-run"
    assert (card["architecture"], card["method"], card["dataset"], card["n"]) == ("small_cnn", "standard", "toy", 10)
    assert card["clean_accuracy"] == res.value("clean", "accuracy")
    assert card["worst_attack"] == "pgd" and card["threat_model"] == "linf" and card["eps"] == eps
    assert card["worst_robust_accuracy"] == res.value("pgd", "accuracy", eps, "linf") == 0.1
    assert card["worst_attack_metrics"]["sensitivity"] == res.value("pgd", "sensitivity", eps, "linf")
    assert card["worst_attack_metrics"]["specificity"] == res.value("pgd", "specificity", eps, "linf")
    assert [a["accuracy"] for a in card["attacks"]] == [0.1, 0.3]
    pgd_summary = next(t for t in res.summary["threats"] if t["threat"] == "pgd")
    assert card["auc_robustness"]["pgd"] == pgd_summary["auc_robustness"]
    assert card["corruption_accuracy"] == {"gaussian": pytest.approx(0.7)}
    assert card["unreliable"] is True and card["failed_checks"] == ["monotone[pgd/linf]"]
    assert card["forward_passes"] is None and card["seed"] == 3


def test_worst_attack_is_the_lowest_at_the_largest_eps() -> None:
    card = build_card(make_results({"pgd": [0.9, 0.5, 0.25], "fgsm": [0.9, 0.2, 0.3]}))  # not the minimum over ε
    assert (card["worst_attack"], card["worst_robust_accuracy"], card["unreliable"]) == ("pgd", 0.25, False)


def test_card_files_round_trip(tmp_path: Path) -> None:
    res = make_results({"pgd": [0.9, 0.5, 0.1]})
    paths = write_card(res, tmp_path / "run")
    assert [p.name for p in paths] == ["card.json", "card.md"]
    card = load_card(tmp_path / "run")
    assert card == json.loads((tmp_path / "run" / "card.json").read_text()) and card["name"] == "run"
    md = (tmp_path / "run" / "card.md").read_text()
    assert md == card_markdown(card)
    assert "| worst-case robust accuracy | 0.1000 (pgd) |" in md and "| unreliable | no |" in md


def test_load_card_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no robustness card"):
        load_card(tmp_path)
    (tmp_path / "card.json").write_text('{"schema": "other"}')
    with pytest.raises(DataError, match="not a medrobust robustness card"):
        load_card(tmp_path / "card.json")


def test_leaderboard_ranks_by_worst_case_robust_accuracy(tmp_path: Path) -> None:
    runs = {
        "weak": make_results({"pgd": [0.95, 0.3, 0.05]}, clean=0.95),
        "robust": make_results({"pgd": [0.8, 0.7, 0.5]}, clean=0.8),
        "tie-higher-clean": make_results({"pgd": [0.9, 0.6, 0.05]}, clean=0.97),
        "noise-only": make_results({}, clean=0.99),
        "constant": make_results({"pgd": [0.6, 0.6, 0.6]}, clean=0.6, failed=("above_majority",)),
    }
    cards = [build_card(r, name) for name, r in runs.items()]
    order = ["robust", "tie-higher-clean", "weak", "noise-only", "constant"]
    assert [c["name"] for c in rank_cards(cards)] == order
    table = leaderboard(cards)
    assert [row[1] for row in table.rows] == order
    assert table.rows[0][4] == 0.5 and table.rows[-2][4] is None
    assert [row[-1] for row in table.rows] == ["ok"] * 4 + ["FAIL: clean ≤ majority rate"]
    written = write_leaderboard(list(runs.items()), tmp_path / "lb")
    assert (tmp_path / "lb" / "leaderboard.md").read_text().index("robust") < (
        tmp_path / "lb" / "leaderboard.md"
    ).read_text().index("weak")
    assert load_card(tmp_path / "lb" / "robust")["worst_robust_accuracy"] == 0.5
    assert len(written) == 2 * len(runs) + 3
