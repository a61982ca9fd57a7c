"""``medrobust list``: what can be named in configs and flags."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from medrobust.registry import Registry
from medrobust.reporting.tables import Table

NAME = "list"
HELP = "list datasets, models, methods, attacks or corruptions"

# kind -> (module, registry attribute)
KINDS = {
    "datasets": ("medrobust.data", "DATASETS"),
    "models": ("medrobust.models", "MODELS"),
    "methods": ("medrobust.methods", "METHODS"),
    "attacks": ("medrobust.attacks", "ATTACKS"),
    "corruptions": ("medrobust.corruptions", "CORRUPTIONS"),
}


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``list`` argument."""
    p.add_argument("kind", choices=sorted(KINDS), help="what to list")
    p.add_argument(
        "--data-root",
        help="with 'datasets': check this folder for the files (default: each dataset's folder under "
        "$MEDROBUST_DATA or ~/.medrobust/data)",
    )


def registry_of(kind: str) -> Registry[Any]:
    """The registry that holds ``kind``."""
    module, attr = KINDS[kind]
    registry: Registry[Any] = getattr(importlib.import_module(module), attr)
    return registry


def run(args: argparse.Namespace) -> int:
    """Print a table of names, metadata and one-line descriptions."""
    registry = registry_of(args.kind)
    meta_keys = sorted({k for e in registry for k, v in e.meta.items() if isinstance(v, (str, int, float, bool))})
    rows = [[e.name, *(_meta(e.meta.get(k)) for k in meta_keys), e.help] for e in registry]
    headers = ["name", *meta_keys, "description"]
    if args.kind == "datasets":
        from medrobust.data.paths import presence

        root = getattr(args, "data_root", None)
        rows = [[*row[:-1], presence(e.name, root), row[-1]] for row, e in zip(rows, registry)]
        headers = [*headers[:-1], "files present", "description"]
    print(Table.of(headers, rows).to_markdown())
    return 0


def _meta(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
