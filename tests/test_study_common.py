"""The study runner of ``benchmarks/study_common.py``: a fine-tuned run starts only after the run it starts from."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import study_common


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace training and evaluation by a recorder of the runs trained, in order."""
    calls: list[str] = []
    lock = threading.Lock()

    def train(run: Path, args: Any) -> None:
        with lock:
            calls.append(run.name)

    monkeypatch.setattr(study_common, "train", train)
    monkeypatch.setattr(study_common, "evaluate", lambda run, grid, flags=(): {"run": run.name})
    return calls


def test_runs_start_after_the_run_they_fine_tune(recorded: list[str], tmp_path: Path) -> None:
    base = tmp_path / "base"
    jobs = [study_common.Job(tmp_path / "tuned", [], after=base), study_common.Job(base, [])]
    docs = study_common.run_all(jobs, [], study_common.Execution(jobs=2))
    assert recorded == ["base", "tuned"]
    assert docs[tmp_path / "tuned"] == {"run": "tuned"}
