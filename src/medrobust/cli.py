"""The ``medrobust`` command: ``demo``, ``train``, ``evaluate``, ``compare``, ``report``, ``export``, ``cache``,
``list``.

User errors (:class:`~medrobust.errors.MedrobustError`) and failures of the machine (``OSError``: disk full, a
file-size limit, a read-only folder) print one line and exit with status 2, without a traceback; argparse usage
errors also exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from medrobust import __version__
from medrobust.errors import MedrobustError, one_line

COMMANDS = ("demo", "train", "evaluate", "compare", "report", "export", "cache", "list", "mrnet", "fgsm_study")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per module in :mod:`medrobust.commands`."""
    parser = argparse.ArgumentParser(
        prog="medrobust",
        description="Train medical-image networks that stay correct under adversarial attacks and noise, "
        "and measure that robustness honestly.",
    )
    parser.add_argument("--version", action="version", version=f"medrobust {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"medrobust.commands.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except (MedrobustError, OSError) as e:  # OSError: disk full, a file-size limit, a read-only or missing folder
        print(f"medrobust {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medrobust {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
