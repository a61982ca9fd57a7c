"""``medrobust compare``: several runs under one threat grid → one side-by-side table and one curve plot."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from medrobust.commands.evaluate import add_threat_arguments, check_args, evaluate_run, threats_from_args
from medrobust.errors import ConfigError, DataError
from medrobust.evaluation import Results, ThreatSpec
from medrobust.reporting.card import write_leaderboard
from medrobust.reporting.comparison import Entry, comparison_table
from medrobust.training.checkpoint import atomic_write_text
from medrobust.training.loop import resolve_device
from medrobust.training.runs import Run, load_run

NAME = "compare"
HELP = "evaluate several runs under one threat grid (reusing their results.json) and print a side-by-side table"


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``compare`` options."""
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by 'medrobust train'")
    add_threat_arguments(p)
    p.add_argument("--out", default="comparison", help="folder for the table (.md/.csv/.tex/.json) and plots")
    p.add_argument("--no-reuse", action="store_true", help="re-evaluate even when a run's results.json matches")
    p.add_argument("--leaderboard", action="store_true", help="write each run's robustness card and rank the runs")
    p.add_argument(
        "--layout",
        choices=("table", "study"),
        default="table",
        help="'study' adds the COVID chest X-ray study's accuracy and calibration tables (mean over levels, RMSCE, "
        "entropy) beside the published ones, and reliability diagrams (clean and under attack)",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate (or reuse) each run, then print and save the comparison."""
    check_args(args)
    threats = threats_from_args(args)
    if len(set(Path(r).resolve() for r in args.runs)) != len(args.runs):
        raise ConfigError("the same run folder is given twice")
    device = resolve_device(args.device)
    entries = [compare_entry(load_run(path, device=str(device)), threats, args, device) for path in args.runs]
    write_comparison(entries, Path(args.out))
    if args.leaderboard:  # robustness cards beside each run's results.json, ranked by worst-case robust accuracy
        print(
            "\nwrote " + ", ".join(str(p) for p in write_leaderboard([(e.name, e.results) for e in entries], args.out))
        )
    if args.layout == "study":
        from medrobust.reporting.study import write_study

        print("\nwrote " + ", ".join(str(p) for p in write_study(entries, Path(args.out))))
    return 0


def compare_entry(run_: Run, threats: list[ThreatSpec], args: argparse.Namespace, device: Any) -> Entry:
    """The run's results under ``threats``: reused from its results.json when it matches, else evaluated."""
    path = run_.path / "results.json"
    results = None if args.no_reuse else reusable(path, run_, threats, args)
    if results is None:
        results = evaluate_run(run_, threats, args, device)
        results.save(path)
    else:
        print(f"reusing {path}")
    seconds = [r["train_seconds"] for r in run_.history if "train_seconds" in r]
    return Entry(run_.name, run_.config.method.name, results, sum(seconds) / len(seconds) if seconds else math.nan)


def reusable(path: Path, run_: Run, threats: list[ThreatSpec], args: argparse.Namespace) -> Results | None:
    """``path``'s results if they were computed after the last checkpoint with exactly this grid, else None."""
    checkpoint = run_.path / "checkpoint.pt"
    if not path.exists() or (checkpoint.exists() and path.stat().st_mtime < checkpoint.stat().st_mtime):
        return None
    try:
        old = Results.load(path)
    except DataError:
        return None
    want = _normal([s.to_dict() for s in [ThreatSpec.clean(), *threats]])
    same = (
        _normal(old.config.get("threats")) == want
        and old.config.get("subset") == args.n
        and old.seed == args.seed
        and old.split == args.split
    )
    return old if same else None


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value))


def write_comparison(entries: list[Entry], out: Path) -> None:
    """Print the table; save it (.md/.csv/.tex), a JSON of the runs' summaries and one curve plot per threat."""
    from medrobust.reporting.dense import dense_plots
    from medrobust.reporting.plots import robustness_curves  # matplotlib: import on use

    table = comparison_table(entries)
    print("\n" + table.to_markdown())
    out.mkdir(parents=True, exist_ok=True)
    written = table.save(out / "comparison")
    summary = [{"run": e.name, "method": e.method, "epoch_seconds": e.epoch_seconds, "summary": e.results.summary,
                "checks": e.results.checks} for e in entries]  # fmt: skip
    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=1, default=str, allow_nan=True))
    written.append(out / "comparison.json")
    runs = [(e.name, e.results) for e in entries]
    for spec in entries[0].results.summary["threats"]:
        tag = "_".join(p for p in (spec["threat"], spec["norm"]) if p)
        written.append(robustness_curves(runs, out / f"robustness_{tag}.png", threat=spec["threat"], norm=spec["norm"]))
    written += dense_plots(entries, out)  # Dice (segmentation), MRE and SDR (landmarks) vs ε
    print("\nwrote " + ", ".join(str(p) for p in written))
