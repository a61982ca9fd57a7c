"""Shared machinery of the multi-seed studies (study_ima.py, study_amat.py): resumable training and evaluation
through the ``medrobust`` command, mean ± sd tables over seeds, accuracy-vs-ε plots with error bands and margin
histograms over epochs.

A run counts as trained once its folder holds ``metrics.json`` (written when training ends); a folder with only
``checkpoint.pt`` was interrupted and continues with ``--resume``; a run counts as evaluated once its
``results.json`` is newer than its checkpoint and was computed with the study's evaluation grid. Re-running a
study therefore redoes only what is missing.

Runs are independent processes, so :func:`run_all` can train and evaluate ``--jobs`` of them at once (on a GPU,
several small runs share the device far better than one does; on the 2-core CPU, keep ``--jobs 1``). Each run's
numbers do not depend on ``--jobs``: every process gets the same ``--threads`` and device, whatever runs beside it.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medrobust.metrics.robustness import auc_robustness
from medrobust.reporting.tables import Table


@dataclass(frozen=True)
class Spec:
    """One method of a study: run-folder name, registry name, ``method.options`` (YAML flow text), table label."""

    key: str
    method: str
    options: str
    label: str


@dataclass(frozen=True)
class Job:
    """One run of a study: its folder, its ``medrobust train`` arguments (without ``--out``), the run it starts
    from (``--init``), which must be trained first, and its relative cost (PGD steps per update, say), used only
    to start the longest runs first so that parallel runs finish together."""

    run: Path
    train_args: list[str]
    after: Path | None = None
    cost: float = 1.0


@dataclass(frozen=True)
class Execution:
    """How a study's runs execute: ``jobs`` processes at once, on ``device``, with ``threads`` CPU threads each."""

    jobs: int = 1
    device: str = "auto"
    threads: int = 1

    def flags(self) -> list[str]:
        """Flags appended to every ``train`` and ``evaluate`` command."""
        return ["--device", self.device, "--threads", str(self.threads)]


def add_execution_options(parser: Any) -> None:
    """``--jobs``, ``--device`` and ``--threads`` on a study's argument parser."""
    parser.add_argument("--jobs", type=int, default=1, help="runs trained / evaluated at once (default 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] for every run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")


def execution(args: Any) -> Execution:
    """The :class:`Execution` the parsed ``args`` ask for."""
    return Execution(jobs=max(1, args.jobs), device=args.device, threads=args.threads)


def run_all(jobs: Sequence[Job], grid: Sequence[str], how: Execution) -> dict[Path, dict[str, Any]]:
    """Train and then evaluate (with ``grid``) every job, ``how.jobs`` at a time, a job only once the run it starts
    from is trained; ``{run folder: results document}``. A failed run stops the study (after the runs in flight
    finish)."""

    def train_and_evaluate(job: Job) -> tuple[Path, dict[str, Any]]:
        train(job.run, [*job.train_args, *how.flags()])
        return job.run, evaluate(job.run, grid, how.flags())

    pending = list(jobs)
    docs: dict[Path, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=how.jobs) as pool:
        while pending:
            ready = sorted((j for j in pending if j.after is None or j.after in docs), key=lambda j: -j.cost)
            if not ready:
                raise ValueError(f"jobs wait on runs that no job trains: {sorted({str(j.after) for j in pending})}")
            docs.update(pool.map(train_and_evaluate, ready))
            pending = [j for j in pending if j not in ready]
    return docs


STUDY_LRS = (3e-3, 1e-3)
"""Adam learning rates of a study's standard run from scratch and of the runs fine-tuned from it."""


def finetune_jobs(
    out: Path,
    seeds: Sequence[int],
    common: Sequence[str],
    methods: Sequence[Spec],
    epochs: tuple[int, int],
    cost: float,
    lrs: tuple[float, float] = STUDY_LRS,
) -> list[Job]:
    """Per seed, a standard run from scratch (``epochs[0]`` epochs, lr ``lrs[0]``) in ``out/standard/seedN``, then
    each of ``methods`` fine-tuned from it (``epochs[1]`` epochs, lr ``lrs[1]``, ``--init``) in ``out/<key>/seedN``."""
    jobs = []
    for seed in seeds:
        base = out / "standard" / f"seed{seed}"
        jobs.append(Job(base, [*common, "--method", "standard", "--epochs", str(epochs[0]), "--lr", f"{lrs[0]:g}",
                               "--seed", str(seed)]))  # fmt: skip
        tuned = [*common, "--epochs", str(epochs[1]), "--lr", f"{lrs[1]:g}", "--seed", str(seed), "--init", str(base)]
        jobs += [
            Job(
                out / m.key / f"seed{seed}",
                [*tuned, "--method", m.method, "--set", f"method.options={m.options}"],
                after=base,
                cost=cost,
            )
            for m in methods
        ]
    return jobs


def medrobust(*args: str) -> None:
    """Run the ``medrobust`` command with this interpreter; a failure stops the study."""
    subprocess.run([sys.executable, "-m", "medrobust.cli", *args], check=True)


def train(out: Path, args: Sequence[str]) -> None:
    """Train into ``out`` unless done; continue an interrupted run from its checkpoint."""
    if (out / "metrics.json").exists():
        return
    resume = ["--resume"] if (out / "checkpoint.pt").exists() else []
    medrobust("train", *args, "--out", str(out), *resume)


def evaluate(run: Path, grid: Sequence[str], flags: Sequence[str] = ()) -> dict[str, Any]:
    """``medrobust evaluate run grid flags`` unless its results are newer than the checkpoint and were computed with
    the same grid (recorded in ``study_grid.txt`` beside them); the results document. ``flags`` (device, threads)
    do not change the numbers asked for, so they are not part of the grid."""
    results, ckpt, stamp = run / "results.json", run / "checkpoint.pt", run / "study_grid.txt"
    same_grid = not stamp.exists() or stamp.read_text() == " ".join(grid)
    if not results.exists() or results.stat().st_mtime < ckpt.stat().st_mtime or not same_grid:
        medrobust("evaluate", str(run), *grid, *flags, "--no-progress")
        stamp.write_text(" ".join(grid))
    doc: dict[str, Any] = json.loads(results.read_text())
    return doc


def curve(doc: dict[str, Any], threat: str, metric: str) -> dict[float, float]:
    """``{ε: value}`` of ``metric`` under ``threat``, with the clean value at ε = 0."""
    out = {}
    for r in doc["rows"]:
        if r["threat"] == "clean" and r["metric"] == metric:
            out[0.0] = r["value"]
    out.update({float(r["level"]): r["value"] for r in doc["rows"] if r["threat"] == threat and r["metric"] == metric})
    return out


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def pm(values: Sequence[float], digits: int = 3) -> str:
    """``"mean ± sd"`` text."""
    m, s = mean_sd(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def summarise(
    curves: dict[str, list[dict[float, float]]], labels: dict[str, str], eps: Sequence[float], title: str, auc: bool
) -> Table:
    """Mean ± sd over seeds of each ε column (and AUC-robustness of the curve when ``auc``), one row per method."""
    header = ("run", "seeds", *(f"@ {e:g}" if e else "clean" for e in eps), *(("AUC-rob",) if auc else ()))
    rows = []
    for key, per_seed in curves.items():
        cells: list[Any] = [labels[key], len(per_seed)]
        cells += [pm([c[e] for c in per_seed]) for e in eps]
        if auc:
            pos = [e for e in eps if e > 0]
            cells.append(pm([auc_robustness(c[0.0], pos, [c[e] for e in pos]) for c in per_seed]))
        rows.append(tuple(cells))
    return Table(header, tuple(rows), ("text",) * len(header), title)


def plot_curves(
    path: Path, curves: dict[str, list[dict[float, float]]], labels: dict[str, str], eps: Sequence[float], ylabel: str
) -> None:
    """Metric vs ε per method: the mean over seeds with a ±1 sd band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    xs = np.array(eps, dtype=float)
    for key, per_seed in curves.items():
        ys = np.array([[c[e] for e in eps] for c in per_seed])
        mean, sd = ys.mean(axis=0), ys.std(axis=0, ddof=1) if len(ys) > 1 else np.zeros(len(eps))
        ax.plot(xs, mean, marker="o", ms=3, label=f"{labels[key]} (n={len(ys)})")
        ax.fill_between(xs, mean - sd, mean + sd, alpha=0.2)
    ax.set(xlabel="L2 ε", ylabel=ylabel, title="mean ± 1 sd over seeds")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)


def plot_margin_histograms(path: Path, run: Path, e_max: float, title: str) -> bool:
    """Histograms of the clean-correct samples' margins, one row per epoch (from ``margins_epochNNN.npz``), as an
    image: epoch on the vertical axis, margin on the horizontal, colour = fraction of samples. False if none."""
    files = sorted(run.glob("margins_epoch*.npz"))
    if not files:
        return False
    from matplotlib.figure import Figure

    top = e_max if math.isfinite(e_max) else max(float(np.load(f)["margins"].max()) for f in files)
    bins = np.linspace(0.0, max(top, 1e-12), 41)
    grid = []
    for f in files:
        saved = np.load(f)
        m = saved["margins"][saved["correct"]]
        hist, _ = np.histogram(m, bins=bins)
        grid.append(hist / max(len(m), 1))
    fig = Figure(figsize=(6.5, 0.25 * len(files) + 1.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        np.array(grid), aspect="auto", origin="lower", extent=(0.0, top, 0.5, len(files) + 0.5), cmap="viridis"
    )
    ax.set(xlabel="margin (L2)", ylabel="epoch", title=title)
    fig.colorbar(image, ax=ax, label="fraction of samples")
    fig.savefig(path, dpi=100)
    return True


def write_report(path: Path, parts: Sequence[str]) -> None:
    """The study's Markdown report."""
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
