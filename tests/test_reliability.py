"""Reliability under faults: one writer per run folder, and failed writes that leave the previous files intact."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from medrobust.cli import main
from medrobust.errors import ConfigError, WriteError
from medrobust.training import checkpoint as ckpt
from medrobust.training.lock import LOCK, run_lock

TINY = ["--set", "data.options={size: 32, n: 48}", "--batch-size", "16", "--no-progress"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def train_args(out: Path, epochs: int, *extra: str) -> list[str]:
    return ["train", "--dataset", "phantom-ct", "--model", "small_cnn", "--out", str(out), "--epochs", str(epochs),
            *TINY, *extra]  # fmt: skip


def python(code: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True, **kw)  # type: ignore[call-overload]


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A run folder whose lock another process holds until it is killed."""
    folder = tmp_path / "run"
    code = (
        "import sys\nfrom medrobust.training.lock import run_lock\n"
        f"with run_lock({str(folder)!r}, 'train'):\n    print('locked', flush=True)\n    sys.stdin.read()\n"
    )
    proc = python(code, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_a_held_folder_is_refused_and_a_killed_holder_leaves_no_stuck_lock(
    held: tuple[Path, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, proc = held
    with pytest.raises(ConfigError, match=rf"in use by medrobust train \(pid {proc.pid}\)"), run_lock(folder, "x"):
        pass
    assert main(train_args(folder, 1)) == 2
    err = capsys.readouterr().err
    assert "is in use by medrobust train" in err and err.count("\n") == 1
    assert not (folder / ckpt.CHECKPOINT).exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK).exists()  # the file stays, the lock does not
    with run_lock(folder, "evaluate"):
        assert (folder / LOCK).read_text() == f"medrobust evaluate (pid {os.getpid()})"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_write_past_the_file_size_limit_keeps_the_previous_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(train_args(out, 1)) == 0
    with run_lock(out, "train"):  # evaluate refuses a run folder in use
        assert main(["evaluate", str(out), "--eps", "0,1/255", "--steps", "2", "--n", "8", "--no-progress"]) == 2
    assert "is in use by medrobust train" in capsys.readouterr().err
    before = {p.name: _digest(p) for p in out.iterdir()}
    limit = 4096  # smaller than a checkpoint, larger than the lock file and config

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = train_args(out, 2, "--resume")
    code = f"import sys, torch\ntorch.set_num_threads(1)\nfrom medrobust.cli import main\nsys.exit(main({args!r}))"
    proc = python(code, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=small_files)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "could not write" in err and "previous version is intact" in err and err.count("\n") == 1
    after = {p.name: _digest(p) for p in out.iterdir()}
    assert set(after) == set(before)  # no temporary file left behind
    assert all(after[name] == before[name] for name in (ckpt.CHECKPOINT, "history.jsonl", "metrics.json"))
    assert main(train_args(out, 2, "--resume")) == 0  # and the run goes on from it


def test_a_failed_write_is_a_one_line_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.pt"
    ckpt.save_checkpoint(p, {"model": {"w": torch.ones(2)}})

    def full(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.os, "fsync", full)
    with pytest.raises(WriteError, match=r"No space left on device.*previous version is intact") as info:
        ckpt.save_checkpoint(p, {"model": {"w": torch.zeros(2)}})
    assert "\n" not in str(info.value) and isinstance(info.value, OSError)
    assert torch.equal(ckpt.load_checkpoint(p)["model"]["w"], torch.ones(2))
    assert [f.name for f in tmp_path.iterdir()] == ["c.pt"]


def test_threads_option_sets_records_and_restores_torch_threads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    torch.set_num_threads(2)
    try:
        assert main(train_args(out, 1, "--threads", "1")) == 0
        assert torch.get_num_threads() == 2
        assert main(["evaluate", str(out), "--eps", "0,1/255", "--steps", "2", "--n", "8", "--threads", "1",
                     "--no-progress"]) == 0  # fmt: skip
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["provenance"]["threads"] == 1 and metrics["provenance"]["cpu_capability"]
    assert "threads: 1" in (out / "config.yaml").read_text()
    versions = json.loads((out / "results.json").read_text())["versions"]
    assert versions["threads"] == 1 and {"cpu_capability", "blas", "cpu", "torch"} <= versions.keys()
    capsys.readouterr()
    assert main(train_args(tmp_path / "bad", 1, "--threads", "-1")) == 2
    assert "threads must be ≥ 0" in capsys.readouterr().err


def test_out_must_be_a_run_an_empty_folder_or_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert main(train_args(photos, 1)) == 2
    err = capsys.readouterr().err
    assert "is not empty and is not a medrobust run" in err and "--force" in err and err.count("\n") == 1
    assert [p.name for p in photos.iterdir()] == ["holiday.jpg"]  # nothing written, not even a lock
    (tmp_path / "file").write_text("x")
    assert main(train_args(tmp_path / "file", 1)) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(train_args(photos, 1, "--force")) == 0
    assert (photos / "holiday.jpg").read_bytes() == b"\xff\xd8" and (photos / ckpt.CHECKPOINT).is_file()
