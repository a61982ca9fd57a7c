"""``medrobust demo``: standard vs PGD adversarial training (SAT) vs IMA on the embedded CT phantom.

No download and CPU-friendly: trains three small CNNs on ``phantom-ct``, prints each one's clean metrics, then
evaluates all three under one threat grid (L2 PGD over an ε sweep and Gaussian noise) and prints the
side-by-side comparison, and writes the HTML report of the three runs (``OUT/report.html``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medrobust.commands._common import CLEAN_METRICS, epoch_line
from medrobust.config import ExperimentConfig
from medrobust.errors import ConfigError
from medrobust.evaluation.compare import compare
from medrobust.evaluation.threats import ThreatSpec, parse_levels, parse_noise
from medrobust.reporting.tables import Table
from medrobust.training.loop import resolve_device
from medrobust.training.runs import METRICS, is_run_folder, train_run

NAME = "demo"
HELP = "train standard, SAT and IMA small CNNs on the embedded phantom-ct data and compare their robustness"


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and settings of the demo (the ``--fast`` plan is smaller; its smaller batches keep the number of updates
    high enough for BatchNorm's running statistics to catch up with the weights: with 400 images in batches of 64,
    4 epochs make 28 updates and the eval-mode standard model stays at the majority rate)."""

    data: dict[str, Any]
    epochs: int
    eval_n: int
    batch_size: int = 64
    eps: str = "0,0.05,0.1,0.2,0.3,0.5"
    steps: int = 20
    noise: str = "gaussian:0.0005,0.001,0.002,0.005"
    methods: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "standard": {},
            "sat": {"eps": 0.1, "norm": "l2", "steps": 7},
            "ima": {"norm": "l2", "e_max": 0.3, "delta": 0.03, "steps": 7},
        }
    )


PLANS = {
    "full": DemoPlan(data={"size": 32, "n": 1000}, epochs=5, eval_n=400),
    "fast": DemoPlan(data={"size": 32, "n": 400}, epochs=4, eval_n=200, batch_size=32),
}


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``demo`` options."""
    p.add_argument("--fast", action="store_true", help="fewer images, epochs and test samples (about a minute)")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's runs and comparison (default: runs/demo)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def method_config(plan: DemoPlan, run_name: str, progress: bool) -> ExperimentConfig:
    """The experiment of one demo run (``standard``, ``sat`` or ``ima``)."""
    options = plan.methods[run_name]
    method = {"standard": "standard", "sat": "pgd_at", "ima": "ima"}[run_name]
    return ExperimentConfig().with_values(
        {
            "data.options": dict(plan.data),
            "method.name": method,
            "method.options": dict(options),
            "train.epochs": plan.epochs,
            "train.batch_size": plan.batch_size,
            "train.seed": 0,
            "train.progress": progress,
        }
    )


def clear_run_folder(path: Path) -> None:
    """Delete an earlier demo run in ``path``; refuse to delete a folder that is not a medrobust run."""
    if not path.exists():
        return
    if not is_run_folder(path) and any(path.iterdir()):
        raise ConfigError(f"{path} exists and is not a medrobust run; choose another --out")
    shutil.rmtree(path)


def train_all(plan: DemoPlan, out: Path, progress: bool) -> list[Path]:
    """Train every run of the plan into ``out/<name>``; returns the run folders."""
    folders = []
    for name in plan.methods:
        config = method_config(plan, name, progress)
        folder = out / name
        clear_run_folder(folder)
        print(f"\n[{name}] {config.method.name} {config.method.options or ''} — {plan.epochs} epochs → {folder}")
        train_run(config, folder, callbacks=(lambda r: print(epoch_line(r, plan.epochs), flush=True),))
        folders.append(folder)
    return folders


def clean_table(folders: list[Path]) -> Table:
    """Clean test metrics of each run (from its metrics.json)."""
    metrics = [json.loads((folder / METRICS).read_text()) for folder in folders]
    rows = [(folder.name, *(m[k] for k in CLEAN_METRICS)) for folder, m in zip(folders, metrics)]
    return Table.of(("run", *CLEAN_METRICS), rows, "clean test metrics")


def run(args: argparse.Namespace) -> int:
    """Train the three demo models, then compare them under attack and noise."""
    t0 = time.perf_counter()
    plan = PLANS["fast" if args.fast else "full"]
    out = Path(args.out)
    folders = train_all(plan, out, not args.no_progress)
    print("\n" + clean_table(folders).to_markdown())
    pgd = ThreatSpec.attack("pgd", norm="l2", eps=parse_levels(plan.eps), steps=plan.steps, loss="ce", restarts=1)
    threats = [pgd, parse_noise(plan.noise)]
    result = compare(folders, threats, out / "comparison", n=plan.eval_n, batch_size=250, seed=0, reuse=False,
                     progress=not args.no_progress, log=print)  # fmt: skip
    print("\n" + result.table.to_markdown())
    print("\nwrote " + ", ".join(str(p) for p in result.written))
    from medrobust.reporting.html import write_report  # matplotlib: import on use
    from medrobust.reporting.sources import collect

    device = resolve_device("auto")
    runs = [collect(f, device=str(device), max_n=100) for f in folders]  # ROC under attack on 100 images (time budget)
    report = write_report(runs, out / "report.html", title="medrobust demo")
    print(f"\nHTML report (one self-contained file): {report}")
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s")
    return 0
