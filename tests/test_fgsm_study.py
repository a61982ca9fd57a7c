"""The FGSM-augmentation study: a retrain-percentage × ε grid of fgsm_aug fine-tunings from one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medrobust.cli import main
from medrobust.errors import ConfigError
from medrobust.evaluation import ThreatSpec
from medrobust.evaluation.outputs import threat_outputs
from medrobust.reporting.binary import grid_table
from medrobust.studies.fgsm_study import Grid, cell_config, run_study
from medrobust.training.runs import load_run

TINY = ["--set", "data.options={size: 32, n: 48}", "--set", "model.options={width: 4}", "--epochs", "1",
        "--batch-size", "16", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fgsm") / "base"
    assert main(["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--out", str(out), *TINY]) == 0
    return out


def test_grid_has_one_row_per_cell_and_writes_table_and_roc(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = ["fgsm-study", str(trained), "--percent", "10,50", "--eps", "0.01,1/255", "--epochs", "1",
            "--no-control", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "study.json").read_text())
    cells = {(r["percent"], r["eps"]) for r in result["rows"]}
    assert len(result["rows"]) == 4 and cells == {(p, e) for p in (10.0, 50.0) for e in (0.01, 1 / 255)}
    assert [r["eps"] for r in result["before"]] == [0.01, 1 / 255]  # in the order given
    table = (out / "study.md").read_text()
    assert table.count("\n| 10 ") + table.count("\n| 50 ") == 4
    for name in ("roc_eps0.01.png", f"roc_eps{1 / 255:g}.png", "cells/p50_eps0.01/metrics.json"):
        assert (out / name).is_file(), name
    tuned = load_run(out / "cells" / "p50_eps0.01")
    assert tuned.config.method.name == "fgsm_aug" and tuned.config.method.options["percentage"] == 50
    assert tuned.config.train.init == str(trained.resolve())


def test_before_rows_match_a_direct_fgsm_evaluation_and_control_is_added(trained: Path, tmp_path: Path) -> None:
    grid = Grid((25.0,), (0.02,), epochs=1)
    result = run_study(trained, tmp_path / "s", grid, log=lambda s: None)
    base = load_run(trained)
    (out,), y = threat_outputs(
        base.model, base.dataset("test"), base.task, ThreatSpec.attack("fgsm", norm="linf", eps=[0.02])
    )
    acc = float((base.task.predict(out) == y).float().mean())
    assert result["before"][0]["fgsm_accuracy"] == pytest.approx(acc)
    assert [(r["percent"], r["eps"]) for r in result["rows"]] == [(0.0, 0.02), (25.0, 0.02)]
    assert "0 (control)" in grid_table(result)
    cfg = cell_config(base, grid, 25.0, 0.02)
    assert cfg.method.options == {"eps": 0.02, "percentage": 25.0, "mode": "replace", "norm": "linf"}


def test_fgsm_scores_move_every_input_by_eps() -> None:
    from conftest import blobs

    data = blobs(16)
    task = data.task()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    (clean,), _ = threat_outputs(model, data, task, ThreatSpec.clean())
    (adv,), _ = threat_outputs(model, data, task, ThreatSpec.attack("fgsm", norm="linf", eps=[0.1]))
    w = model[1].weight.detach().reshape(-1)
    # linear model, x far from the box edges: the FGSM step changes the logit by ε·‖w‖₁ against the label
    sign = 1 - 2 * data.targets.float()
    x = data.images.reshape(16, -1)
    inside = ((x > 0.1) & (x < 0.9)).all(dim=1)
    torch.testing.assert_close((adv - clean).reshape(-1)[inside], (0.1 * w.abs().sum() * sign)[inside])


def test_bad_grids_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="percentages"):
        Grid((0.0,), (0.01,))
    with pytest.raises(ConfigError, match="ε"):
        Grid((1.0,), (0.0,))
    with pytest.raises(ConfigError, match="epochs"):
        Grid((1.0,), (0.01,), epochs=0)


def test_a_multiclass_run_is_refused(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from medrobust.studies import fgsm_study
    from medrobust.tasks.classification import ClassificationTask

    three = replace(load_run(trained), task=ClassificationTask(kind="multiclass", num_classes=3))
    monkeypatch.setattr(fgsm_study, "load_run", lambda *a, **k: three)
    with pytest.raises(ConfigError, match="binary classification run"):
        run_study(trained, tmp_path / "s", Grid((5.0,), (0.01,)))


def test_auc_ranks_logits_so_saturated_probabilities_do_not_tie() -> None:
    from medrobust.evaluation.outputs import binary_metrics
    from medrobust.tasks.classification import ClassificationTask

    logits, y = torch.tensor([[20.0], [30.0], [18.0], [25.0]]), torch.tensor([1, 1, 0, 0])
    assert binary_metrics(ClassificationTask(kind="binary"), logits, y)["auc"] == pytest.approx(0.75)
    flipped = ClassificationTask(kind="binary", positive_class=0)
    assert binary_metrics(flipped, logits, y)["auc"] == pytest.approx(0.75)  # AUC(y == 0, −z) = AUC(y == 1, z)


def test_rounding_notes_flag_percentages_that_round_alike() -> None:
    from medrobust.studies.fgsm_study import rounding_notes

    notes = rounding_notes((0.5, 1, 2, 6, 10), 64)  # round(p·64/100) = 0, 1, 1, 4, 6 per epoch of 64
    assert len(notes) == 2 and "0.5 %" in notes[0] and "1 % and 2 %" in notes[1]
    assert rounding_notes((1, 2, 6, 10), 200) == []


def test_a_finished_cell_of_other_settings_is_refused_but_the_control_ignores_eps(
    trained: Path, tmp_path: Path
) -> None:
    from medrobust.config import dump_config
    from medrobust.studies.fgsm_study import check_cell, fine_tune

    base = load_run(trained)
    grid = Grid((25.0,), (0.02,), epochs=1)
    cell = tmp_path / "cells" / "p25_eps0.02"
    cell.mkdir(parents=True)
    (cell / "config.yaml").write_text(dump_config(cell_config(base, grid, 25.0, 0.02)))
    (cell / "metrics.json").write_text("{}")
    check_cell(cell, cell_config(base, grid, 25.0, 0.02).with_values({"train.progress": True}))  # same: accepted
    for changed in (
        Grid((25.0,), (0.02,), epochs=2),
        Grid((25.0,), (0.02,), lr=0.5),
        Grid((25.0,), (0.02,), mode="add"),
    ):
        with pytest.raises(ConfigError, match="new --out or delete"):
            fine_tune(base, changed, 25.0, 0.02, tmp_path, log=lambda s: None)
    control = tmp_path / "control"
    control.mkdir()
    (control / "config.yaml").write_text(dump_config(cell_config(base, grid, 0.0, 0.02)))
    check_cell(control, cell_config(base, Grid((25.0,), (0.1,), norm="l2"), 0.0, 0.1))  # p = 0: ε, norm unused
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        check_cell(control, cell_config(base, Grid((25.0,), (0.1,), epochs=3), 0.0, 0.1))


def test_repeated_grid_values_and_bad_numbers_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="repeat"):
        Grid((1.0,), (1e-3, 0.001))
    with pytest.raises(ConfigError, match="repeat"):
        Grid((2.0, 1.0, 2.0), (1e-3,))
    assert main(["fgsm-study", "missing-run", "--percent", "1,-2", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "--percent" in err and "'-2'" in err and "level" not in err
