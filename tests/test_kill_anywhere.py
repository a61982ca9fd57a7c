"""Kill anywhere: ``train`` and ``evaluate`` killed with SIGKILL at many points (``$MEDROBUST_FAULT``, see
:mod:`medrobust.faults`) leave only whole files in the run folder, and resuming gives the weights, history, metrics
and results rows of an uninterrupted run, bit for bit.

Each kill runs the command in a forked child of this (already imported) process, so a kill costs the command's work
only, not a fresh interpreter.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image

from medrobust.cli import main
from medrobust.faults import ENV
from medrobust.training.checkpoint import CHECKPOINT, TEMPORARY, load_checkpoint
from medrobust.training.lock import LOCK

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="kills forked children (POSIX only)"
)
TINY = ["--set", "data.options={size: 28, n: 24}", "--set", "model.options.width=4", "--no-progress",
        "--threads", "1"]  # fmt: skip
TRAIN = ["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--epochs", "2", "--batch-size", "8", *TINY]
EVALUATE = ["--eps", "0,1/255,2/255", "--steps", "2", "--noise", "gaussian:0.1", "--n", "12", "--batch-size", "4",
            "--no-progress", "--threads", "1"]  # fmt: skip
TIMING = ("seconds", "train_seconds")

# 24 training samples in batches of 8: 3 batches per epoch. Atomic writes of train: config.yaml (1), then per epoch
# checkpoint.pt and history.jsonl (2, 3 and 4, 5), then metrics.json (6).
TRAIN_KILLS = [
    "write.partial:1",  # config.yaml half-written: the folder holds only the lock and a temporary file
    "train.batch:2",  # inside epoch 1, nothing saved yet
    "train.epoch:1",  # epoch 1 finished, before its checkpoint
    "write.partial:2",  # the first checkpoint half-written
    "write.temp:2",  # the first checkpoint written, not yet renamed
    "write.replaced:2",  # the first checkpoint in place, its history not yet
    "write.temp:3",  # the first history written, not yet renamed
    "train.batch:5",  # inside epoch 2
    "write.partial:4",  # the second checkpoint half-written
    "write.replaced:4",  # the last checkpoint in place, history one epoch behind
    "write.temp:6",  # metrics.json written, not yet renamed
    "write.partial:6",  # metrics.json half-written
]
# 12 samples in batches of 4: 3 batches per pass (clean, PGD, Gaussian noise). Atomic writes of evaluate: the
# progress file after each threat (1-3), results.json (4), the table .md/.csv/.tex (5-7), three figures (8-10) and
# card.json, card.md (11, 12).
EVALUATE_KILLS = [
    "evaluate.batch:2",  # inside the clean pass
    "write.partial:1",  # the progress file half-written
    "write.replaced:1",  # clean outputs saved
    "evaluate.batch:5",  # inside the PGD pass
    "write.temp:2",  # PGD outputs written, not yet renamed
    "evaluate.batch:8",  # inside the noise pass
    "write.replaced:3",  # every threat saved
    "write.partial:4",  # results.json half-written
    "write.temp:4",  # results.json written, not yet renamed
    "write.replaced:4",  # results.json in place, tables not yet
    "write.partial:8",  # a figure half-written
    "write.replaced:11",  # card.json in place, card.md not yet
]


def _child(argv: list[str], fault: str) -> None:
    os.environ[ENV] = fault
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.exit(main(argv))


def run_killed(argv: list[str], fault: str) -> None:
    """Run the CLI with ``argv`` in a forked child and check that ``fault`` killed it with SIGKILL."""
    child = multiprocessing.get_context("fork").Process(target=_child, args=(argv, fault))
    child.start()
    child.join(timeout=240)
    assert child.exitcode == -signal.SIGKILL, f"{fault}: exit code {child.exitcode}, expected a kill"


def assert_whole(folder: Path) -> None:
    """Every file in ``folder`` parses as its kind; only atomic writes' temporary files may be partial."""
    for path in folder.iterdir():
        if path.name == LOCK or path.name.endswith(TEMPORARY):
            continue
        suffix = path.suffix
        if path.name == CHECKPOINT:
            load_checkpoint(path)
        elif suffix == ".partial":
            assert isinstance(torch.load(path, weights_only=True), dict)
        elif suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".jsonl":
            text = path.read_text()
            assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())
        elif suffix == ".yaml":
            assert isinstance(yaml.safe_load(path.read_text()), dict)
        elif suffix == ".png":
            with Image.open(path) as image:
                image.load()
        else:
            assert suffix in (".md", ".csv", ".tex") and path.read_text().strip(), path


def assert_no_leftovers(folder: Path) -> None:
    left = [p.name for p in folder.iterdir() if p.name.endswith((TEMPORARY, ".partial"))]
    assert not left, left


def _history(folder: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _results(folder: Path) -> dict[str, Any]:
    doc = json.loads((folder / "results.json").read_text())
    return {k: doc[k] for k in ("rows", "summary", "checks")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted run (``trained``) and an evaluated copy of it (``evaluated``)."""
    base = tmp_path_factory.mktemp("reference")
    assert main([*TRAIN, "--out", str(base / "trained")]) == 0
    shutil.copytree(base / "trained", base / "evaluated")
    assert main(["evaluate", str(base / "evaluated"), *EVALUATE]) == 0
    return {"trained": base / "trained", "evaluated": base / "evaluated"}


@pytest.mark.parametrize("fault", TRAIN_KILLS)
def test_train_killed_anywhere_resumes_bit_identically(
    reference: dict[str, Path], tmp_path: Path, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    run_killed([*TRAIN, "--out", str(out)], fault)
    assert_whole(out)
    assert main([*TRAIN, "--out", str(out), "--resume"]) == 0
    capsys.readouterr()
    assert_whole(out)
    assert_no_leftovers(out)
    want, got = load_checkpoint(reference["trained"] / CHECKPOINT), load_checkpoint(out / CHECKPOINT)
    assert want["model"].keys() == got["model"].keys()
    assert all(torch.equal(want["model"][k], got["model"][k]) for k in want["model"])
    assert _history(out) == _history(reference["trained"])
    for name in ("config.yaml", "metrics.json"):
        assert (out / name).read_text() == (reference["trained"] / name).read_text()


@pytest.mark.parametrize("fault", EVALUATE_KILLS)
def test_evaluate_killed_anywhere_resumes_to_the_same_rows(
    reference: dict[str, Path], tmp_path: Path, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference["trained"], out)
    run_killed(["evaluate", str(out), *EVALUATE], fault)
    assert_whole(out)
    assert main(["evaluate", str(out), *EVALUATE]) == 0
    capsys.readouterr()
    assert_whole(out)
    assert_no_leftovers(out)
    assert _results(out) == _results(reference["evaluated"])
    names = {p.name for p in reference["evaluated"].iterdir()}
    assert {p.name for p in out.iterdir()} == names
