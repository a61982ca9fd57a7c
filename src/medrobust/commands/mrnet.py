"""``medrobust mrnet``: the MRNet protocol — one model per plane × task, logistic-regression fusion per task,
AUC / accuracy / sensitivity / specificity and ROC curves per task (clean and optionally under FGSM)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medrobust.config import ExperimentConfig, load_config
from medrobust.data.mrnet import PLANES, TASKS
from medrobust.errors import ConfigError
from medrobust.evaluation.threats import parse_number
from medrobust.reporting.binary import mrnet_table, write_mrnet
from medrobust.studies.mrnet import run_protocol

NAME = "mrnet"
HELP = (
    "MRNet protocol: train (or reuse) one model per plane × task, fuse the planes per task by logistic "
    "regression, report AUC, accuracy, sensitivity, specificity and ROC curves"
)
DEFAULTS = {"model.name": "mrnet", "train.batch_size": 8, "train.epochs": 10, "optim.lr": 1e-4}


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``mrnet`` options."""
    p.add_argument("--data-root", required=True, help="MRNet folder (train/, valid/, the six CSVs)")
    p.add_argument("--out", required=True, help="study folder: runs/TASK-PLANE/, mrnet.json, mrnet.md, roc_TASK.png")
    p.add_argument("--config", help="YAML config shared by the nine models (e.g. recipes/mrnet-baseline.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--epochs", type=int, help="training epochs per model")
    p.add_argument("--planes", default=",".join(PLANES), help="planes to train and fuse (default: all three)")
    p.add_argument("--tasks", default=",".join(TASKS), help="tasks (default: abnormal,acl,meniscus)")
    p.add_argument("--fgsm-eps", help="also evaluate under an L∞ FGSM at this ε on the fused model")
    p.add_argument("--fusion-c", type=float, default=1.0, help="inverse L2 strength of the fusion (default: 1)")
    p.add_argument("--batch-size", type=int, default=16, help="evaluation batch size")


def _names(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ConfigError(f"{flag}: {', '.join(bad) or 'nothing'} not allowed; use some of {', '.join(allowed)}")
    if len(set(names)) < len(names):
        raise ConfigError(f"{flag}: {text!r} repeats a name; give each once")
    return names


def _eps(text: str | None) -> float | None:
    """``--fgsm-eps`` as a number > 0 (None when not given)."""
    if text is None:
        return None
    try:
        eps = parse_number(text)
    except ConfigError:
        eps = 0.0  # negative or unreadable: the message below names the flag
    if not eps > 0:
        raise ConfigError(f"--fgsm-eps must be a number > 0 (e.g. 1e-3 or 1/255), got {text!r}")
    return eps


def base_config(args: argparse.Namespace) -> ExperimentConfig:
    """The recipe (or medrobust's MRNet defaults), then ``--set``, then ``--epochs``."""
    config = load_config(args.config) if args.config else ExperimentConfig().with_values(DEFAULTS)
    config = config.with_overrides(list(args.set))
    return config.with_values({"train.epochs": args.epochs}) if args.epochs is not None else config


def run(args: argparse.Namespace) -> int:
    """Train/reuse, fuse, print the table, write mrnet.json, mrnet.md and one ROC figure per task."""
    planes, tasks = _names(args.planes, PLANES, "--planes"), _names(args.tasks, TASKS, "--tasks")
    eps = _eps(args.fgsm_eps)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not args.fusion_c > 0:
        raise ConfigError(f"--fusion-c must be > 0, got {args.fusion_c}")
    base = base_config(args)
    out = Path(args.out)
    print(f"MRNet protocol: {len(planes)} plane(s) × {len(tasks)} task(s) of {args.data_root} → {out}", flush=True)
    results = run_protocol(
        base,
        args.data_root,
        out,
        planes=planes,
        tasks=tasks,
        eps=eps,
        c=args.fusion_c,
        batch_size=args.batch_size,
        log=lambda s: print(s, flush=True),
    )
    print("\n" + mrnet_table(results))
    print("wrote " + ", ".join(str(p) for p in write_mrnet(results, out)))
    return 0
