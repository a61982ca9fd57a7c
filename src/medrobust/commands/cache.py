"""``medrobust cache``: convert a dataset's splits once into an on-disk cache read batch by batch."""

from __future__ import annotations

import argparse

from medrobust.config import ExperimentConfig, load_config
from medrobust.data.base import SPLITS
from medrobust.data.cache import write_cache

NAME = "cache"
HELP = "convert a dataset once into a folder of .npy files that training reads per batch (data larger than memory)"


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``cache`` options."""
    p.add_argument("--config", help="YAML experiment file whose data section names the dataset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set data.options.size=224")  # fmt: skip
    p.add_argument("--dataset", help="dataset name (medrobust list datasets)")
    p.add_argument("--data-root", help="folder holding the dataset files")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="splits to write (default all)")
    p.add_argument("--out", required=True, help="new folder for the cache (train with --dataset cache --data-root OUT)")


def run(args: argparse.Namespace) -> int:
    """Write the cache and say how to train on it."""
    config = load_config(args.config) if args.config else ExperimentConfig()
    config = config.with_overrides(list(args.set))
    values = {k: v for k, v in (("data.name", args.dataset), ("data.root", args.data_root)) if v is not None}
    data = config.with_values(values).data
    manifest = write_cache(data.name, args.out, root=data.root, options=data.options, splits=args.splits)
    for split, entry in manifest["splits"].items():
        print(f"{split:>5}: {entry['n']} samples, images {tuple(entry['images']['shape'])} {entry['images']['dtype']}")
    print(f"wrote {args.out}; train on it with --dataset cache --data-root {args.out}")
    return 0
