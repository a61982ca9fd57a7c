"""``medrobust compare``: several runs under one threat grid → one side-by-side table and one curve plot."""

from __future__ import annotations

import argparse

from medrobust.commands.evaluate import add_threat_arguments, check_args, max_memory, threats_from_args
from medrobust.distributed import distributed, launched
from medrobust.evaluation.compare import compare
from medrobust.reporting.card import write_leaderboard
from medrobust.training.loop import resolve_device

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
    """Evaluate (or reuse) each run, then print the comparison and where it was saved."""
    check_args(args)
    threats = threats_from_args(args)
    main = launched().main  # under torchrun every rank evaluates its share of the data; rank 0 writes and prints
    with distributed(resolve_device(args.device)) as device:
        result = compare(args.runs, threats, args.out, split=args.split, n=args.n, batch_size=args.batch_size,
                         seed=args.seed, device=device, reuse=not args.no_reuse, layout=args.layout,
                         progress=not args.no_progress and main, log=print if main else None,
                         max_memory=max_memory(args))  # fmt: skip
    if not main:
        return 0
    print("\n" + result.table.to_markdown())
    print("\nwrote " + ", ".join(str(p) for p in result.written))
    if args.leaderboard:  # robustness cards beside each run's results.json, ranked by worst-case robust accuracy
        board = write_leaderboard([(e.name, e.results) for e in result.entries], args.out)
        print("\nwrote " + ", ".join(str(p) for p in board))
    if args.layout == "study":
        for table in result.study_tables:
            print("\n" + table.to_markdown())
        print("\nwrote " + ", ".join(str(p) for p in result.study_written))
    return 0
