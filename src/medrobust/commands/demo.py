"""``medrobust demo``: train on the embedded CT phantom and report clean metrics (no download, CPU-friendly)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from medrobust.commands._common import CLEAN_METRICS, epoch_line, format_table
from medrobust.config import ExperimentConfig
from medrobust.errors import ConfigError
from medrobust.training.runs import METRICS, train_run

NAME = "demo"
HELP = "train a small CNN on the embedded phantom-ct data and print its clean metrics (no download)"


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options."""
    p.add_argument("--fast", action="store_true", help="fewer, smaller images and epochs (≈ 1 minute)")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's runs (default: runs/demo)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def demo_config(fast: bool, progress: bool) -> ExperimentConfig:
    """The demo's experiment: small CNN, standard training on phantom-ct."""
    values: dict[str, object] = {"train.epochs": 3 if fast else 5, "train.seed": 0, "train.progress": progress}
    if fast:
        values["data.options"] = {"n": 600}
    return ExperimentConfig().with_values(values)


def clear_run_folder(path: Path) -> None:
    """Delete an earlier demo run in ``path``; refuse to delete a folder that is not a medrobust run."""
    if not path.exists():
        return
    if not (path / "config.yaml").exists() and any(path.iterdir()):
        raise ConfigError(f"{path} exists and is not a medrobust run; choose another --out")
    shutil.rmtree(path)


def run(args: argparse.Namespace) -> int:
    """Train the demo model (or reuse a finished one) and print its metrics."""
    t0 = time.perf_counter()
    config = demo_config(args.fast, not args.no_progress)
    out = Path(args.out) / ("standard-fast" if args.fast else "standard")
    clear_run_folder(out)
    epochs = config.train.epochs
    print(f"training small_cnn on phantom-ct (standard, {epochs} epochs) → {out}")
    train_run(config, out, callbacks=(lambda r: print(epoch_line(r, epochs), flush=True),))
    metrics = json.loads((out / METRICS).read_text())
    print(f"\nclean test metrics of the standard model on phantom-ct (n = {metrics['n']}):")
    print(format_table(CLEAN_METRICS, [[metrics[k] for k in CLEAN_METRICS]]))
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s")
    return 0
