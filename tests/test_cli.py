"""End-to-end CLI tests on a tiny phantom (size 32, a few dozen images)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import medrobust
from medrobust.cli import main

TINY = ["--set", "data.options={size: 32, n: 48}", "--epochs", "2", "--batch-size", "16", "--no-progress"]


def train(out: Path, *extra: str) -> int:
    return main(["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--out", str(out), *TINY, *extra])


def test_train_writes_run_and_load_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    for name in ("config.yaml", "checkpoint.pt", "history.jsonl", "metrics.json"):
        assert (out / name).is_file(), name
    text = capsys.readouterr().out
    assert "balanced_accuracy" in text and "epoch   2/2" in text
    model = medrobust.load_model(out)
    assert not model.training
    ds = medrobust.data.load("phantom-ct", split="test", size=32, n=48)
    logits = model(ds.batch(torch.arange(4))[0])
    assert logits.shape == (4, 1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] == 48


def test_resume_with_changed_setting_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert train(out) == 0
    assert train(out, "--resume", "--lr", "0.5") == 2
    assert "--resume with a different optim.lr" in capsys.readouterr().err
    assert train(out, "--resume", "--epochs", "3") == 0  # extending a run is allowed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "smal_cnn"], "did you mean 'small_cnn'"),
        (["--dataset", "phantom_ct"], "did you mean 'phantom-ct'"),
        (["--method", "standart"], "did you mean 'standard'"),
        (["--set", "optim.lrr=1"], "did you mean 'lr'"),
        (["--epochs", "0"], "epochs"),
        (["--config", "missing.yaml"], "not found"),
        (["--set", "data.options.size=33"], "size"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = ["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*base, "--set", "data.options={size: 32, n: 16}", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(medrobust.DataError, match="not found"):
        medrobust.load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(medrobust.DataError, match=r"no checkpoint\.pt"):
        medrobust.load_model(tmp_path / "empty")


@pytest.mark.parametrize("kind", ["datasets", "models", "methods"])
def test_list(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", kind]) == 0
    expected = {"datasets": "phantom-ct", "models": "resnet18", "methods": "standard"}[kind]
    assert expected in capsys.readouterr().out


def test_console_script_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "medrobust.cli", "train", "--model", "smal_cnn", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "did you mean 'small_cnn'" in proc.stderr and "Traceback" not in proc.stderr


def test_same_seed_same_weights_across_runs(tmp_path: Path) -> None:
    """The weight initialisation is seeded by train.seed, not by whatever the global RNG holds."""
    torch.manual_seed(123)  # disturb the global RNG between the two runs
    assert train(tmp_path / "a", "--epochs", "1") == 0
    torch.rand(7)
    assert train(tmp_path / "b", "--epochs", "1") == 0
    a, b = medrobust.load_model(tmp_path / "a").state_dict(), medrobust.load_model(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
