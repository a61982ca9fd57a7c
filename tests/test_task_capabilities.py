"""Tasks declare their capabilities; the task record in results.json keeps them; older files derive them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import blobs
from medrobust.errors import DataError
from medrobust.evaluation import Results, ThreatSpec, evaluate
from medrobust.methods.loss_threshold import LossPredicate
from medrobust.tasks import ClassificationTask, LandmarkTask, SegmentationTask
from medrobust.tasks.base import Capabilities, Task
from medrobust.tasks.records import kind_capabilities, record_capabilities, task_record

CLASSIFICATION = Capabilities(dense=False, headline_metrics=("accuracy",), calibrated=True, has_majority_rate=True)
SEGMENTATION = Capabilities(dense=True, headline_metrics=("dice",), calibrated=False, has_majority_rate=False)


@pytest.mark.parametrize(
    ("task", "want"),
    [
        (ClassificationTask(kind="multiclass", num_classes=3), CLASSIFICATION),
        (ClassificationTask(kind="binary"), CLASSIFICATION),
        (ClassificationTask(kind="multilabel", num_classes=4), CLASSIFICATION),
        (SegmentationTask(num_classes=3), SEGMENTATION),
        (LandmarkTask(num_landmarks=2), Capabilities(True, ("mre", "sdr@2"), False, False)),
        (LandmarkTask(radii=(2.5, 5.0)), Capabilities(True, ("mre", "sdr@2.5"), False, False)),
        (LossPredicate(SegmentationTask(), 0.3), SEGMENTATION),
        (LossPredicate(ClassificationTask(kind="binary"), 0.1), CLASSIFICATION),
    ],
)
def test_each_task_declares_its_capabilities(task: Task, want: Capabilities) -> None:
    assert isinstance(task, Task)
    assert Capabilities.of(task) == want
    record = task_record(task)
    assert record["kind"] == task.kind and record_capabilities(record) == want
    assert record_capabilities(json.loads(json.dumps(record))) == want  # survives JSON


def test_old_records_derive_capabilities_from_their_kind() -> None:
    assert record_capabilities({"kind": "binary", "num_classes": 2}) == CLASSIFICATION
    assert record_capabilities({"kind": "segmentation", "tau": 0.5}) == SEGMENTATION
    assert record_capabilities({"kind": "landmark", "radii": [1.0, 3.0]}).headline_metrics == ("mre", "sdr@1")
    assert record_capabilities({"base": {"kind": "landmark"}, "tau": 0.2}).dense  # a wrapped task's old record
    assert record_capabilities({}) == CLASSIFICATION  # Results built by hand
    assert kind_capabilities("landmark") == Capabilities.of(LandmarkTask())
    with pytest.raises(DataError, match="unknown task kind 'regression'"):
        record_capabilities({"kind": "regression"})
    with pytest.raises(DataError, match="malformed capabilities"):
        record_capabilities({"kind": "binary", "capabilities": {"dense": False}})


def test_saved_capabilities_win_over_the_kind() -> None:
    saved = Capabilities(dense=False, headline_metrics=("auc", "accuracy"), calibrated=False, has_majority_rate=False)
    assert record_capabilities({"kind": "binary", "capabilities": saved.to_dict()}) == saved


def test_results_json_round_trip_keeps_capabilities_and_old_files_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = blobs(24)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    task = ClassificationTask(kind="multiclass", num_classes=2)
    res = evaluate(model, data, task, [ThreatSpec.noise("gaussian", [0.01])], progress=False, probe_n=4)
    assert res.task["capabilities"] == CLASSIFICATION.to_dict() and res.capabilities == CLASSIFICATION
    loaded = Results.load(res.save(tmp_path / "results.json"))
    assert loaded.capabilities == CLASSIFICATION and loaded.task == json.loads(json.dumps(res.task))
    doc = json.loads((tmp_path / "results.json").read_text())
    del doc["task"]["capabilities"]  # a file written before capabilities were saved
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert Results.load(tmp_path / "old.json").capabilities == CLASSIFICATION
    doc["task"] = {"kind": "segmentation"}
    assert Results.from_dict(doc).capabilities == SEGMENTATION


def test_majority_rate_and_calibration_follow_the_task_not_the_metric_names() -> None:
    """A classification task whose metrics happen to be named like Dice still gets a majority rate and RMSCE."""

    class DiceNamed(ClassificationTask):
        def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
            return {**super().metrics(outputs, targets), "dice_like": 0.5}

    torch.manual_seed(0)
    data = blobs(16)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    res = evaluate(model, data, DiceNamed(kind="multiclass"), [ThreatSpec.noise("gaussian", [0.01])],
                   progress=False, probe_n=4)  # fmt: skip
    assert res.summary["majority_rate"] is not None and "rmsce" in res.summary["clean"]
    assert "curves" not in res.summary["threats"][0]
