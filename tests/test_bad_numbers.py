"""Numbers that must not be reported: NaN or Inf inputs, a model that outputs NaN, a training run that diverges and a
model whose outputs change from call to call give a clear error or a failed check, never a robust-looking number."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conftest import blobs
from medrobust import models
from medrobust.data.base import ArrayDataset, DatasetInfo
from medrobust.errors import DataError
from medrobust.evaluation import Results, RobustnessCheckWarning, ThreatSpec, evaluate
from medrobust.methods import METHODS, Batch, StepContext, StepOutput, TrainingMethod
from medrobust.reporting.outputs import format_summary
from medrobust.tasks import ClassificationTask
from medrobust.training import checkpoint as ckpt
from medrobust.training.loop import TrainingDiverged, fit

TASK = ClassificationTask(kind="binary", num_classes=2)
INFO = DatasetInfo("toy", "binary", 1, (4, 4), 2, ("a", "b"), "test")


def grid_data(n: int = 16) -> ArrayDataset:
    """uint8 images: every clean input lies on the 1/255 grid."""
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8), np.arange(n) % 2, INFO)


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(16, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x.flatten(1))


class NaNOffGrid(Linear):
    """Finite on inputs on the 1/255 grid (clean data), NaN elsewhere (noisy or attacked inputs)."""

    def forward(self, x: Tensor) -> Tensor:
        off = ((x * 255 - (x * 255).round()).abs() > 1e-3).flatten(1).any(dim=1, keepdim=True)
        return torch.where(off, torch.full_like(x[:, :1, 0, 0], math.nan), super().forward(x))


class AlwaysNaN(Linear):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * math.nan


class DropoutInEval(Linear):
    """Dropout left on at evaluation (``training=True``): a randomised model."""

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(F.dropout(x.flatten(1), p=0.5, training=True))


def run(model: nn.Module, data: object, threats: list[ThreatSpec]) -> Results:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessCheckWarning)
        return evaluate(model, data, TASK, threats, progress=False, batch_size=8, probe_n=8)  # type: ignore[arg-type]


def failed(results: Results) -> dict[str, str]:
    return {c["name"]: c["message"] for c in results.failed_checks}


def test_nan_or_inf_images_are_refused_at_load_naming_the_sample() -> None:
    x = np.full((6, 1, 4, 4), 0.5, dtype=np.float32)
    x[4, 0, 1, 2] = np.inf
    with pytest.raises(DataError, match=r"'toy' \(test\): image 4 contains NaN or Inf"):
        ArrayDataset(x, np.zeros(6, dtype=np.int64), INFO)


def test_nan_inputs_from_a_loader_are_refused_before_evaluation() -> None:
    x = torch.full((12, 1, 4, 4), 0.5)
    x[9, 0, 0, 0] = math.nan
    loader = iter([(x[:8], torch.zeros(8, dtype=torch.long)), (x[8:], torch.zeros(4, dtype=torch.long))])
    with pytest.raises(DataError, match="evaluation sample 9 holds NaN or Inf") as info:
        run(Linear(), loader, [ThreatSpec.noise("gaussian", [0.1])])
    assert "\n" not in str(info.value)


def test_nan_outputs_under_a_threat_void_its_rows_and_fail_a_check(tmp_path: Path) -> None:
    results = run(NaNOffGrid(), grid_data(), [ThreatSpec.noise("gaussian", [0.1])])
    clean = [r for r in results.rows if r["threat"] == "clean"]
    noisy = [r for r in results.rows if r["threat"] == "gaussian"]
    assert clean and all(math.isfinite(r["value"]) for r in clean)
    assert noisy and all(math.isnan(r["value"]) for r in noisy)
    assert "gaussian@0.1" in failed(results)["finite_outputs"]
    assert "! finite_outputs" in format_summary(results)
    saved = Results.load(results.save(tmp_path / "results.json"))
    assert all(math.isnan(r["value"]) for r in saved.rows if r["threat"] == "gaussian")
    assert '"value": null' in (tmp_path / "results.json").read_text()


def test_a_model_that_outputs_only_nan_reports_no_accuracy() -> None:
    results = run(AlwaysNaN(), grid_data(), [ThreatSpec.attack("pgd", norm="linf", eps=[0, 8 / 255], steps=2)])
    assert all(math.isnan(r["value"]) for r in results.rows)
    assert math.isnan(results.summary["clean_accuracy"])
    assert all(math.isnan(a) for t in results.summary["threats"] for a in t["accuracy"])
    assert {"finite_outputs", "eps0_equals_clean[pgd/linf]"} <= failed(results).keys()
    assert "clean" in failed(results)["finite_outputs"]


def test_a_randomised_model_fails_the_deterministic_check() -> None:
    results = run(DropoutInEval(), grid_data(), [ThreatSpec.noise("gaussian", [0.1])])
    assert "randomised" in failed(results)["deterministic"]
    assert "deterministic" not in failed(run(Linear(), grid_data(), [ThreatSpec.noise("gaussian", [0.1])]))


class DivergesInEpoch2(TrainingMethod):
    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        out = METHODS.create("standard").training_step(model, batch, ctx)
        return StepOutput(loss=out.loss * (math.inf if ctx.epoch == 2 else 1.0), output=out.output)


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4)
    train = blobs(32)
    with pytest.raises(TrainingDiverged, match=r"loss became inf at epoch 2, step 0") as info:
        fit(model, DivergesInEpoch2(), train, None, task=train.task(), optimizer=torch.optim.SGD(model.parameters()),
            epochs=3, batch_size=16, run_dir=tmp_path, progress=False)  # fmt: skip
    assert "\n" not in str(info.value)
    state = ckpt.load_checkpoint(tmp_path / ckpt.CHECKPOINT)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 1
