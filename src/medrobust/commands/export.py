"""``medrobust export``: a run's model as a safetensors file (weights, normalisation and rebuild metadata)."""

from __future__ import annotations

import argparse

from medrobust.training.export import export_run

NAME = "export"
HELP = "export a run's model (weights with normalisation inside, metadata) to a .safetensors file"


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``export`` options."""
    p.add_argument("run_dir", metavar="RUN", help="run folder written by 'medrobust train' (or its checkpoint.pt)")
    p.add_argument("--out", required=True, help="the .safetensors file to write")


def run(args: argparse.Namespace) -> int:
    """Export and say where the file went and how to load it."""
    export_run(args.run_dir, args.out)
    print(f"wrote {args.out}; load it with medrobust.training.export.load_exported({str(args.out)!r})")
    return 0
