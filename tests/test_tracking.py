"""Experiment tracking: TensorBoard event files and an MLflow run are written by ``train --log`` and
``report --log``, then read back (each test skips only when its extra is not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medrobust.cli import main
from medrobust.errors import ConfigError
from medrobust.evaluation.results import Results
from medrobust.tracking import MLFLOW_RUN_ID, Tracker, numbers, result_scalars, tracker_for
from report_runs import evaluate, npz_root, train


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return npz_root(tmp_path_factory.mktemp("tracking") / "data")


def test_numbers_and_result_scalars() -> None:
    rec = {"epoch": 2, "train_loss": 0.5, "flag": True, "name": "x", "bad": float("nan"), "margin_acc@0.1": 1}
    assert numbers(rec) == {"train_loss": 0.5, "margin_acc@0.1": 1.0}
    rows = [{"threat": "clean", "norm": None, "level": 0.0, "metric": "accuracy", "value": 0.9, "n": 4},
            {"threat": "pgd", "norm": "l2", "level": 0.5, "metric": "accuracy", "value": 0.5, "n": 4},
            {"threat": "pgd", "norm": "l2", "level": 0.0, "metric": "accuracy", "value": 0.9, "n": 4},
            {"threat": "pgd", "norm": "l2", "level": 0.5, "metric": "auc", "value": float("nan"), "n": 4}]  # fmt: skip
    scalars = result_scalars(Results(rows=rows))
    assert ("eval/pgd_l2/accuracy", 1, 0.5) in scalars and ("eval/pgd_l2/level", 1, 0.5) in scalars
    assert ("eval/clean/accuracy", 0, 0.9) in scalars
    assert not any(tag.endswith("/auc") for tag, _, _ in scalars)


def test_no_tracker_records_nothing(tmp_path: Path) -> None:
    with tracker_for(None, tmp_path) as t:
        assert type(t) is Tracker
        t({"epoch": 1, "train_loss": 1.0})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="unknown tracker"):
        tracker_for("wandb", tmp_path)


def test_tensorboard_event_files(data_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = evaluate(train(data_root, tmp_path / "tb", "ima", "--log", "tensorboard"))
    assert main(["report", str(run), "--examples", "1", "--log", "tensorboard"]) == 0
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert [e.step for e in acc.Scalars("train/train_loss")] == [1, 2]
    history = [r["train_loss"] for r in _history(run)]
    assert [e.value for e in acc.Scalars("train/train_loss")] == pytest.approx(history)
    assert [e.step for e in acc.Images("margins")] == [1, 2]  # IMA's margin histograms as images
    res = Results.load(run / "results.json")
    got = {e.step: e.value for e in acc.Scalars("eval/pgd_l2/accuracy")}
    want = dict(enumerate(res.curve("pgd", "accuracy", "l2")[1]))
    assert got == pytest.approx(want)
    assert "artifacts/text_summary" in tags["tensors"] and (run / "tensorboard" / "artifacts" / "report.html").is_file()


def test_mlflow_run(data_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run = evaluate(train(data_root, tmp_path / "ml", "ima", "--log", "mlflow"))
    run_id = (run / MLFLOW_RUN_ID).read_text().strip()
    assert main(["report", str(run), "--examples", "1", "--log", "mlflow"]) == 0
    assert (run / MLFLOW_RUN_ID).read_text().strip() == run_id  # the report adds to the training's run
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    found = client.get_run(run_id)
    assert found.info.run_name == "ml" and found.info.status == "FINISHED"
    assert found.data.params["method.name"] == '"ima"'
    losses = client.get_metric_history(run_id, "train/train_loss")
    assert [m.step for m in losses] == [1, 2]
    assert [m.value for m in losses] == pytest.approx([r["train_loss"] for r in _history(run)])
    assert {m.step for m in client.get_metric_history(run_id, "train/margin_acc_0.5")} == {1, 2}
    res = Results.load(run / "results.json")
    got = {m.step: m.value for m in client.get_metric_history(run_id, "eval/pgd_l2/accuracy")}
    assert got == pytest.approx(dict(enumerate(res.curve("pgd", "accuracy", "l2")[1])))
    top = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.html", "margins", "eval"} <= top
    assert {a.path for a in client.list_artifacts(run_id, "margins")} == {
        "margins/margins_epoch001.png",
        "margins/margins_epoch002.png",
    }


def _history(run: Path) -> list[dict[str, float]]:
    from medrobust.reporting.sources import read_history

    return read_history(run / "history.jsonl")
