"""``medrobust report``: the single-file HTML report of one evaluated run, or the comparison of several."""

from __future__ import annotations

import argparse
from pathlib import Path

from medrobust.errors import ConfigError

NAME = "report"
HELP = "write one self-contained HTML report (figures inline, no network) of evaluated runs; several: a comparison"


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``report`` options."""
    p.add_argument(
        "sources", nargs="+", metavar="RUN|RESULTS.json", help="run folders (with results.json) or results files"
    )
    p.add_argument("--html", help="output file (default: RUN/report.html for one run, report.html for several)")
    p.add_argument("--title", default="", help="page title")
    p.add_argument("--examples", type=int, default=4, help="gallery examples (default: 4; 0: none)")
    p.add_argument(
        "--no-gallery", action="store_true", help="skip everything that needs the model (gallery, per class, ROC)"
    )
    p.add_argument("--device", default="cpu", help="device for the gallery's attacks (default: cpu)")
    p.add_argument("--log", choices=("tensorboard", "mlflow"), help="also record the results and the report in the "
                   "run's TensorBoard or MLflow store (one run only)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Collect each source, render the report and print its path."""
    from medrobust.reporting.html import write_report
    from medrobust.reporting.sources import collect, resolve

    if args.examples < 0:
        raise ConfigError(f"--examples must be >= 0, got {args.examples}")
    if args.log and len(args.sources) != 1:
        raise ConfigError("--log records one run; give a single RUN or results file")
    resolved = [resolve(s) for s in args.sources]  # fail fast on a bad path, before any model is loaded
    if len({p.resolve() for p, _ in resolved}) != len(resolved):
        raise ConfigError("the same results are given twice")
    reports = [
        collect(s, gallery=not args.no_gallery, examples=args.examples, device=args.device) for s in args.sources
    ]
    if args.html:
        out = Path(args.html)
    elif len(reports) == 1:
        out = (reports[0].folder or reports[0].results_path.parent) / "report.html"
    else:
        out = Path("report.html")
    path = write_report(reports, out, title=args.title)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    if args.log:
        from medrobust.tracking import tracker_for

        folder = reports[0].folder or reports[0].results_path.parent
        with tracker_for(args.log, folder) as tracker:
            tracker.log_results(reports[0].results)
            tracker.log_artifact(path)
        print(f"logged the results and the report to {args.log} in {folder}")
    return 0
