"""Experiment tracking as extras: TensorBoard event files or an MLflow run, stored inside the run folder.

A tracker is a training callback (one call per epoch record: every number of the record, and the IMA/AMAT
``margins_epochNNN.png`` of that epoch as an image) that can also log evaluation results (one scalar per
threat, norm, metric and level) and files (the HTML report). Nothing leaves the machine:

- ``tensorboard`` (extra ``medrobust[tensorboard]``): event files in ``RUN/tensorboard`` (``tensorboard
  --logdir RUN/tensorboard``); artefacts are copied there and their names logged as text.
- ``mlflow`` (extra ``medrobust[mlflow]``, ``mlflow-skinny`` is enough): a local file store in ``RUN/mlruns``
  (``mlflow ui --backend-store-uri RUN/mlruns``), experiment ``medrobust``, one MLflow run per run folder; its
  id is kept in ``RUN/mlflow_run_id`` so ``medrobust report RUN --log mlflow`` adds to the training's run.

Example:
    >>> with tracker_for(None, "runs/x") as tracker:  # no tracking: a tracker that records nothing
    ...     tracker({"epoch": 1, "train_loss": 0.5})
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from medrobust.errors import ConfigError
from medrobust.evaluation.results import Results
from medrobust.training.checkpoint import atomic_write_text

TRACKERS = ("tensorboard", "mlflow")
MLFLOW_RUN_ID = "mlflow_run_id"
_MLFLOW_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


class Tracker:
    """A tracker that records nothing (``--log`` not given); the base of the real ones."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def __call__(self, record: dict[str, Any]) -> None:
        """Log one epoch record (a :func:`~medrobust.training.loop.fit` callback)."""

    def log_results(self, results: Results) -> None:
        """Log every row of an evaluation."""

    def log_artifact(self, path: str | Path) -> None:
        """Keep a file (e.g. the HTML report) with the tracked run."""

    def close(self) -> None:
        """Flush and release the store."""

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def tracker_for(kind: str | None, run_dir: str | Path) -> Tracker:
    """The tracker ``kind`` (``"tensorboard"``, ``"mlflow"`` or ``None`` for none) of ``run_dir``; raises
    :class:`ConfigError` when the extra is not installed."""
    if kind is None:
        return Tracker(run_dir)
    if kind == "tensorboard":
        return TensorBoardTracker(run_dir)
    if kind == "mlflow":
        return MLflowTracker(run_dir)
    raise ConfigError(f"unknown tracker {kind!r}; use one of {', '.join(TRACKERS)}")


def numbers(record: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries of a history record, except ``epoch``."""
    keep = {k: v for k, v in record.items() if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)}
    return {k: float(v) for k, v in keep.items() if math.isfinite(v)}


def result_scalars(results: Results) -> list[tuple[str, int, float]]:
    """``(tag, step, value)`` per finite row: tag ``eval/THREAT[_NORM]/METRIC``, step the level's index (the
    levels are logged beside them as ``eval/THREAT[_NORM]/level``)."""
    out: list[tuple[str, int, float]] = []
    keys = sorted({(r["threat"], r["norm"]) for r in results.rows}, key=str)
    for threat, norm in keys:
        tag = f"eval/{threat}" + (f"_{norm}" if norm else "")
        rows = [r for r in results.rows if r["threat"] == threat and r["norm"] == norm]
        levels = sorted({float(r["level"]) for r in rows})
        out += [(f"{tag}/level", i, v) for i, v in enumerate(levels)]
        out += [(f"{tag}/{r['metric']}", levels.index(float(r["level"])), float(r["value"]))
                for r in rows if math.isfinite(float(r["value"]))]  # fmt: skip
    return out


def _margin_figure(run_dir: Path, epoch: int) -> Path | None:
    path = run_dir / f"margins_epoch{epoch:03d}.png"
    return path if path.is_file() else None


class TensorBoardTracker(Tracker):
    """Event files in ``RUN/tensorboard`` (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(run_dir)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log tensorboard needs the extra: pip install 'medrobust[tensorboard]'") from None
        self.log_dir = self.run_dir / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def __call__(self, record: dict[str, Any]) -> None:
        epoch = int(record["epoch"])
        for k, v in numbers(record).items():
            self.writer.add_scalar(f"train/{k}", v, epoch)
        figure = _margin_figure(self.run_dir, epoch)
        if figure is not None:
            import numpy as np
            from PIL import Image

            with Image.open(figure) as im:
                self.writer.add_image("margins", np.asarray(im.convert("RGB")), epoch, dataformats="HWC")
        self.writer.flush()

    def log_results(self, results: Results) -> None:
        for tag, step, value in result_scalars(results):
            self.writer.add_scalar(tag, value, step)
        self.writer.add_text("eval/checks", json.dumps(results.checks))
        self.writer.flush()

    def log_artifact(self, path: str | Path) -> None:
        path = Path(path)
        target = self.log_dir / "artifacts" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        self.writer.add_text("artifacts", f"{path.name}: {target}")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """A local MLflow file store in ``RUN/mlruns`` (see the module docstring)."""

    def __init__(self, run_dir: str | Path, experiment: str = "medrobust") -> None:
        super().__init__(run_dir)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this flag
        try:  # optional packages are imported by name (tests/test_dependencies.py)
            tracking, entities = importlib.import_module("mlflow.tracking"), importlib.import_module("mlflow.entities")
        except ImportError:
            raise ConfigError("--log mlflow needs the extra: pip install 'medrobust[mlflow]'") from None
        self.metric = entities.Metric
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.client = tracking.MlflowClient(tracking_uri=(self.run_dir / "mlruns").resolve().as_uri())
        found = self.client.get_experiment_by_name(experiment)
        exp = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        self.run_id = self._existing_run() or self.client.create_run(exp, run_name=self.run_dir.name).info.run_id
        atomic_write_text(self.run_dir / MLFLOW_RUN_ID, self.run_id + "\n")
        self._params_logged = False

    def _existing_run(self) -> str | None:
        saved = self.run_dir / MLFLOW_RUN_ID
        if not saved.is_file():
            return None
        run_id = saved.read_text().strip()
        try:
            self.client.get_run(run_id)
        except Exception:  # MlflowException for an unknown id; the store was deleted
            return None
        return run_id

    def _log_params(self) -> None:
        config = self.run_dir / "config.yaml"
        if self._params_logged or not config.is_file():
            return
        from medrobust.config import load_config

        flat = {f"{section}.{k}": json.dumps(v) for section, values in load_config(config).to_dict().items()
                for k, v in values.items()}  # fmt: skip
        for k, v in flat.items():
            self.client.log_param(self.run_id, _key(k), v[:500])
        self._params_logged = True

    def __call__(self, record: dict[str, Any]) -> None:
        Metric = self.metric
        self._log_params()
        epoch = int(record["epoch"])
        stamp = _now_ms()
        metrics = [Metric(_key(f"train/{k}"), v, stamp, epoch) for k, v in numbers(record).items()]
        self.client.log_batch(self.run_id, metrics=metrics)
        figure = _margin_figure(self.run_dir, epoch)
        if figure is not None:
            self.client.log_artifact(self.run_id, str(figure), "margins")

    def log_results(self, results: Results) -> None:
        Metric = self.metric
        stamp = _now_ms()
        metrics = [Metric(_key(tag), v, stamp, step) for tag, step, v in result_scalars(results)]
        for start in range(0, len(metrics), 900):  # MLflow accepts at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 900])
        self.client.log_dict(self.run_id, {"checks": results.checks, "summary": results.summary}, "eval/summary.json")

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self._log_params()
        self.client.set_terminated(self.run_id)


def _key(name: str) -> str:
    """An MLflow-safe key (letters, digits, ``_-. /``): ``margin_acc@0.1`` → ``margin_acc_0.1``."""
    return _MLFLOW_KEY.sub("_", name)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
