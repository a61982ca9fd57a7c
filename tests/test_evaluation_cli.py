"""``medrobust evaluate`` end to end on a tiny MedMNIST-format run, and its one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medrobust.cli import main
from medrobust.evaluation import Results
from medrobust.reporting.outputs import format_summary

OUTPUTS = ("robustness_table.md", "robustness_table.csv", "robustness_table.tex", "robustness_pgd_linf.png",
           "robustness_gaussian.png", "reliability.png")  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch small_cnn run on a synthetic 28×28 binary npz (bright square = class 1)."""
    root = tmp_path_factory.mktemp("mm")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 48), ("val", 8), ("test", 16)):
        y = np.arange(n)[:, None] % 2
        x = rng.integers(0, 100, (n, 28, 28)).astype(np.uint8)
        x[y[:, 0] == 1, 10:18, 10:18] += 120
        arrays |= {f"{split}_images": x, f"{split}_labels": y}
    np.savez(root / "pneumoniamnist.npz", **arrays)
    out = root / "run"
    args = "train --dataset medmnist --set data.options.flag=pneumoniamnist --model small_cnn --epochs 2"
    assert (
        main([*args.split(), "--batch-size", "16", "--no-progress", "--data-root", str(root), "--out", str(out)]) == 0
    )
    return out


def test_evaluate_writes_results_tables_and_plots(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    args = ["--eps", "0,1/255,4/255", "--steps", "3", "--noise", "gaussian:0.01,0.1", "--seed", "1", "--no-progress"]
    assert main(["evaluate", str(run_dir), *args]) == 0
    out = capsys.readouterr().out
    assert "| pgd    | 4/255 |" in out and "clean accuracy" in out and "checks:" in out
    res = Results.load(run_dir / "results.json")
    assert (res.model, res.method, res.split, res.n, res.seed) == ("small_cnn", "standard", "test", 16, 1)
    assert {t["threat"] for t in res.summary["threats"]} == {"pgd", "gaussian"}
    for name in OUTPUTS:
        assert (run_dir / name).stat().st_size > 0, name
    assert format_summary(res) in out


def test_json_option_and_subset(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "r.json"
    args = ["--attack", "fgsm", "--norm", "l2", "--eps", "0.5", "--n", "6", "--no-progress"]
    assert main(["evaluate", str(run_dir), *args, "--json", str(target)]) == 0
    doc = json.loads(target.read_text())
    assert doc["n"] == 6 and doc["config"]["threats"][1]["name"] == "fgsm"
    assert (target.parent / "robustness_fgsm_l2.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--eps", "0,1/0"], "cannot read '1/0'"),
        (["--eps", "-0.1"], "negative"),
        (["--attack", "pgdd"], "did you mean 'pgd'"),
        (["--noise", "gausian:0.1"], "did you mean 'gaussian'"),
        (["--noise", "gaussian"], "NAME:LEVELS"),
        (["--loss", "cw"], "ce, margin"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--attack", "none"], "needs at least one --noise"),
        ([], "not found"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["evaluate", str(tmp_path / "no-run"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
