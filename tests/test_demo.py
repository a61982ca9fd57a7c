"""``medrobust demo`` end to end on a shrunken plan: trains, prints the clean table and the comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from medrobust.cli import main
from medrobust.commands import demo


def test_demo_trains_and_compares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    methods = {"standard": {}, "sat": {"eps": 0.1, "norm": "l2", "steps": 2}}
    tiny = demo.DemoPlan(data={"size": 32, "n": 48}, epochs=1, eval_n=12, eps="0,0.1", steps=2,
                         noise="gaussian:0.001", methods=methods)  # fmt: skip
    monkeypatch.setitem(demo.PLANS, "fast", tiny)
    assert main(["demo", "--fast", "--no-progress", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "clean test metrics" in text and "evaluating sat on phantom-ct (test, n = 12)" in text
    assert "| standard | standard |" in text and "acc @ 0.1" in text and "demo finished" in text
    for name in ("comparison.md", "comparison.json", "robustness_pgd_l2.png", "robustness_gaussian.png"):
        assert (tmp_path / "comparison" / name).is_file(), name
