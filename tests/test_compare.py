"""``medrobust compare`` end to end on two tiny phantom runs, and the failure status of a collapsed model."""

from __future__ import annotations

from pathlib import Path

import pytest

from medrobust.cli import main
from medrobust.errors import ConfigError
from medrobust.evaluation import Results
from medrobust.reporting.comparison import Entry, comparison_table, status

TINY = ["--set", "data.options={size: 32, n: 48}", "--epochs", "1", "--batch-size", "16", "--no-progress"]
GRID = ["--norm", "l2", "--eps", "0,0.5,1", "--steps", "3", "--noise", "gaussian:0.01", "--n", "24", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    out = []
    for method, extra in (("standard", []), ("pgd_at", ["--set", "method.options={eps: 0.5, norm: l2, steps: 2}"])):
        path = root / method
        assert main(["train", "--method", method, "--out", str(path), *TINY, *extra]) == 0
        out.append(path)
    return out


def test_compare_writes_table_and_reuses_results(
    runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), *GRID, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| standard" in text and "| pgd_at" in text and "AUC-rob" in text and "gaussian mean acc" in text
    for name in ("comparison.md", "comparison.csv", "comparison.tex", "comparison.json", "robustness_pgd_l2.png"):
        assert (out / name).is_file(), name
    assert main(["compare", *map(str, runs), *GRID, "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("reusing") == 2
    assert main(["compare", *map(str, runs), *GRID[:-3], "--n", "20", "--out", str(out)]) == 0
    assert "reusing" not in capsys.readouterr().out  # another grid: evaluated again


def test_compare_study_layout_end_to_end(runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    noise = ["--noise", "gaussian:0.1,1", "--noise", "salt_pepper:0.1", "--noise", "speckle:0.1"]
    grid = ["--eps", "0,1/255,3/255", "--steps", "2", *noise, "--n", "16", "--no-progress"]
    assert main(["compare", *map(str, runs), *grid, "--layout", "study", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Adversarial (pgd linf 1/255…3/255)" in text and "RMSCE (%)" in text and "published Table I" in text
    for name in ("study_accuracy.md", "study_calibration.csv", "published_accuracy.tex",
                 "reliability_standard_clean.png", "reliability_pgd_at_pgd.png"):  # fmt: skip
        assert (out / name).is_file(), name
    table = (out / "study_accuracy.csv").read_text().splitlines()
    assert len(table) == 3 and table[1].startswith("standard,standard,")  # header + one row per run
    assert (
        main(
            [
                "compare",
                *map(str, runs),
                "--eps",
                "0",
                "--steps",
                "2",
                "--n",
                "16",
                "--no-progress",
                "--layout",
                "study",
                "--out",
                str(tmp_path / "zero"),
            ]
        )
        == 0
    )  # fmt: skip  (ε = 0 only: no crash)


def test_compare_errors(runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(runs[0]), str(runs[0]), "--out", str(tmp_path)]) == 2
    assert main(["compare", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def _results(clean: float, majority: float, failed: list[str]) -> Results:
    summary = {"clean_accuracy": clean, "majority_rate": majority, "clean": {"rmsce": 0.1, "entropy": 0.5},
               "threats": [{"threat": "pgd", "norm": "l2", "kind": "attack", "levels": [0.0, 1.0],
                            "accuracy": [clean, clean], "auc_robustness": clean, "mean_accuracy": clean}]}  # fmt: skip
    checks = [{"name": n, "passed": False, "message": "x"} for n in failed]
    return Results(rows=[], summary=summary, checks=checks)


def test_collapsed_model_shows_as_failure() -> None:
    assert status(_results(0.5, 0.5, ["above_majority"])) == "FAIL: clean ≤ majority rate"
    assert status(_results(0.9, 0.5, [])) == "ok"
    assert status(_results(0.9, 0.5, ["monotone[pgd/l2]"])).startswith("check:")
    table = comparison_table(
        [Entry("a", "standard", _results(0.9, 0.5, [])), Entry("b", "ima", _results(0.5, 0.5, ["above_majority"]))]
    )
    md = table.to_markdown()
    assert "FAIL" in md and "acc @ 1" in md


def test_library_compare_and_evaluate_run_take_typed_arguments(
    runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from medrobust.evaluation import ThreatSpec
    from medrobust.evaluation.compare import compare
    from medrobust.evaluation.orchestrate import evaluate_run
    from medrobust.training.runs import load_run

    threats = [ThreatSpec.attack("pgd", norm="l2", eps=[0, 0.5], steps=2)]
    loaded = load_run(runs[0])
    result = compare([loaded, runs[1]], threats, tmp_path / "cmp", n=12, progress=False, seed=3)
    assert capsys.readouterr().out == ""  # the library prints nothing unless given a log
    assert [e.name for e in result.entries] == ["standard", "pgd_at"] and result.study_tables == ()
    assert result.table.header[:3] == ("run", "method", "clean acc") and len(result.table.rows) == 2
    assert (tmp_path / "cmp" / "comparison.md") in result.written
    assert Results.load(runs[0] / "results.json").seed == 3  # each evaluated run's results are saved with it
    lines: list[str] = []
    again = compare(runs, threats, tmp_path / "cmp", n=12, progress=False, seed=3, log=lines.append)
    assert lines == [f"reusing {r / 'results.json'}" for r in runs]
    assert again.entries[0].results.rows == result.entries[0].results.rows
    with pytest.raises(ConfigError, match="given twice"):
        compare([runs[0], runs[0]], threats, tmp_path / "x")
    res = evaluate_run(loaded, threats, n=12, progress=False, warn=False, out=tmp_path / "one" / "results.json")
    assert res.model == "small_cnn" and res.config["run"] == str(loaded.path) and res.n == 12
    assert {p.name for p in (tmp_path / "one").iterdir()} >= {"results.json", "robustness_table.md", "reliability.png"}
