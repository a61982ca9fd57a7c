"""``medrobust train``: train a model from a YAML config and/or flags into a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medrobust.commands._common import CLEAN_METRICS, epoch_line
from medrobust.config import ExperimentConfig, load_config
from medrobust.distributed import launched
from medrobust.reporting.tables import Table
from medrobust.tracking import TRACKERS, tracker_for
from medrobust.training.runs import METRICS, check_out_folder, train_run

NAME = "train"
HELP = "train a model (config file and/or flags) into a run folder; --resume continues an interrupted run"

# flag -> dotted config key
FLAG_KEYS = {
    "dataset": "data.name",
    "data_root": "data.root",
    "model": "model.name",
    "method": "method.name",
    "epochs": "train.epochs",
    "seed": "train.seed",
    "lr": "optim.lr",
    "optimizer": "optim.name",
    "batch_size": "train.batch_size",
    "device": "train.device",
    "init": "train.init",
    "threads": "train.threads",
    "skip_bad": "data.options.skip_bad",
    "amp": "train.amp",
    "amp_attack": "train.amp_attack",
    "channels_last": "train.channels_last",
    "compile": "train.compile",
}


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``train`` options."""
    p.add_argument("--config", help="YAML experiment file (e.g. recipes/phantom-standard.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=0.01 --set data.options.size=32",
    )
    p.add_argument("--out", required=True, help="run folder (config.yaml, checkpoint.pt, history.jsonl, metrics.json)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out that is not a medrobust run")
    p.add_argument("--dataset", help="dataset name (medrobust list datasets)")
    p.add_argument("--data-root", help="folder holding the dataset files")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        default=None,
        help="skip (and count) unreadable or missing data files instead of stopping (file-based datasets)",
    )
    p.add_argument("--model", help="model name (medrobust list models)")
    p.add_argument("--method", help="training method (medrobust list methods)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", help="sgd, adam or adamw")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--init", help="start from the weights of this run folder")
    p.add_argument(
        "--threads", type=int, help="torch CPU threads (default 0: one per core; 1 is often faster on shared cores)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    gpu = p.add_argument_group("GPU settings (docs/distributed.md)")
    gpu.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                     help="bfloat16 autocast of the update's forward and backward on CUDA (default on)")  # fmt: skip
    gpu.add_argument("--amp-attack", action="store_true", default=None,
                     help="training attacks under autocast too (default fp32; IMA/AMAT always fp32)")  # fmt: skip
    gpu.add_argument("--channels-last", action="store_true", default=None, help="channels-last memory layout")
    gpu.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--log", choices=TRACKERS, help="also record the epochs in RUN/tensorboard or RUN/mlruns (extras)")


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """Config file, then ``--set`` overrides, then the explicit flags."""
    config = load_config(args.config) if args.config else ExperimentConfig()
    config = config.with_overrides(list(args.set))
    values = {key: getattr(args, flag) for flag, key in FLAG_KEYS.items() if getattr(args, flag) is not None}
    if args.no_progress:
        values["train.progress"] = False
    return config.with_values(values)


def run(args: argparse.Namespace) -> int:
    """Train and print the per-epoch log and the clean test metrics."""
    config = resolve_config(args)
    epochs = config.train.epochs
    main = launched().main  # under torchrun only rank 0 reports
    print_main = print if main else _silent
    print_main(
        f"training {config.model.name} on {config.data.name} with {config.method.name} for {epochs} epochs → {args.out}"
    )
    printer = (lambda r: print(epoch_line(r, epochs), flush=True),)
    check_out_folder(Path(args.out), args.force)  # before the tracker writes into it
    with tracker_for(args.log if main else None, args.out) as tracker:  # --log tensorboard|mlflow (else a no-op)
        trained, _ = train_run(config, args.out, resume=args.resume, callbacks=(*printer, tracker), force=True)
    if not main:
        return 0
    metrics = json.loads((Path(args.out) / METRICS).read_text())
    print(f"\nclean test metrics (n = {metrics['n']}):")
    if trained.task.dense:  # e.g. Dice / MRE / SDR, then the predicate rate
        numbers = [k for k, v in metrics.items() if isinstance(v, int | float) and k not in ("n", "accuracy")]
        shown = [*numbers, "accuracy"]
    else:
        shown = list(CLEAN_METRICS)
    print(Table.of(shown, [[metrics[k] for k in shown]]).to_markdown())
    return 0


def _silent(*_: object) -> None:
    """``print`` for ranks other than 0."""
