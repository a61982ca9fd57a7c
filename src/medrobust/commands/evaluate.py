"""``medrobust evaluate``: robustness of a trained run under attacks and noise → results.json, tables, plots."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from medrobust.attacks import ATTACKS
from medrobust.corruptions import CORRUPTIONS
from medrobust.distributed import distributed, launched, main_only
from medrobust.errors import ConfigError
from medrobust.evaluation import ThreatSpec, parse_levels, parse_loss, parse_noise
from medrobust.evaluation.memory import parse_size
from medrobust.evaluation.orchestrate import evaluate_run
from medrobust.reporting.outputs import format_summary, threat_tables, write_results
from medrobust.runtime import num_threads
from medrobust.training.lock import run_lock
from medrobust.training.loop import resolve_device
from medrobust.training.runs import load_run

NAME = "evaluate"
HELP = "evaluate a run under attacks (PGD, FGSM, …) and noise; writes results.json, tables and plots"
DEFAULT_EPS = {"linf": "0,1/255,2/255,4/255,8/255", "l2": "0,0.25,0.5,1,2"}


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by 'medrobust train' (or its checkpoint.pt)")
    add_threat_arguments(p)
    p.add_argument("--json", help="results file (default: RUN_DIR/results.json); tables and plots go beside it")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: one per core)")


GRADIENT_STEP_DEFAULTS = {"pgd": 20, "ifgsm": 20}  # the CLI's PGD default; APGD/AutoAttack keep their own 100


def add_threat_arguments(p: argparse.ArgumentParser) -> None:
    """The threat-grid and evaluation options shared by ``evaluate`` and ``compare``."""
    p.add_argument(
        "--attack",
        action="append",
        metavar="NAME",
        help="attack (medrobust list attacks); repeat for several; 'none' for noise only (default: pgd)",
    )
    p.add_argument("--norm", default="linf", choices=("linf", "l2"), help="attack norm (default: linf)")
    p.add_argument("--eps", help=f"comma-separated ε list, fractions allowed (default linf: {DEFAULT_EPS['linf']}; "
                   f"l2: {DEFAULT_EPS['l2']})")  # fmt: skip
    p.add_argument("--steps", type=int, help="attack steps (default: 20 for pgd/ifgsm; apgd/autoattack: 100)")
    p.add_argument("--queries", type=int, help="Square queries (square, autoattack; default 5000)")
    p.add_argument("--aa-version", choices=("standard", "plus"), help="AutoAttack version (default: standard)")
    p.add_argument(
        "--rel-step", type=float, help="step = REL_STEP·ε/steps (default 2.5, Madry; IMA's protocol: 10 with 100 steps)"
    )
    p.add_argument("--loss", default="ce", help="attack loss: ce, margin or ce,margin (worst case; default: ce)")
    p.add_argument("--restarts", type=int, default=1, help="random restarts per loss (default: 1)")
    p.add_argument(
        "--noise",
        action="append",
        default=[],
        metavar="NAME:LEVELS",
        help="noise corruption and levels, e.g. gaussian:0.01,0.1 (repeatable; medrobust list corruptions)",
    )
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="data split (default: test)")
    p.add_argument("--n", type=int, help="evaluate a seeded random subset of N samples")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget for the model's activations, weights and a batch of inputs, e.g. 2G: the model then "
        "runs on chunks of each batch that fit (same batches and random draws; for 3D volumes)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def threats_from_args(args: argparse.Namespace) -> list[ThreatSpec]:
    """The threat grid described by the flags (names are checked against the registries)."""
    names = [n.strip() for a in (args.attack or ["pgd"]) for n in a.split(",") if n.strip()]
    threats = []
    if names != ["none"]:
        eps = parse_levels(args.eps or DEFAULT_EPS[args.norm])
        given = {"steps": args.steps, "rel_step": args.rel_step, "queries": args.queries, "version": args.aa_version}
        wanted = {"loss": parse_loss(args.loss), "restarts": args.restarts}
        wanted.update({k: v for k, v in given.items() if v is not None})
        for name in names:
            params = inspect.signature(ATTACKS.get(name).factory).parameters
            options = {k: v for k, v in wanted.items() if k in params}
            if name in GRADIENT_STEP_DEFAULTS and "steps" not in options:
                options["steps"] = GRADIENT_STEP_DEFAULTS[name]
            threats.append(ThreatSpec.attack(name, norm=args.norm, eps=eps, **options))
    for text in args.noise:
        spec = parse_noise(text)
        CORRUPTIONS.get(spec.name)
        threats.append(spec)
    if not threats:
        raise ConfigError("nothing to evaluate: '--attack none' needs at least one --noise NAME:LEVELS")
    return threats


def max_memory(args: argparse.Namespace) -> int | None:
    """The ``--max-memory`` budget in bytes, or None."""
    return None if args.max_memory is None else parse_size(args.max_memory)


def check_args(args: argparse.Namespace) -> None:
    if args.rel_step is not None and not args.rel_step > 0:
        raise ConfigError(f"--rel-step must be > 0, got {args.rel_step}")
    for flag in ("steps", "restarts", "batch_size", "queries"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    max_memory(args)


def run(args: argparse.Namespace) -> int:
    """Load the run, evaluate the threat grid, write results.json, tables and plots, print the summary."""
    check_args(args)
    threats = threats_from_args(args)
    main = launched().main  # under torchrun every rank evaluates its share of the data; rank 0 locks, writes, prints
    run_ = load_run(args.run_dir)  # on the CPU; evaluate_run moves the model to this rank's device
    out = Path(args.json) if args.json else run_.path / "results.json"
    partial = None if launched().parallel else out.with_name(out.name + ".partial")  # resume: one process only
    with main_only(run_lock(run_.path, "evaluate")), num_threads(args.threads):  # not while it trains
        with distributed(resolve_device(args.device)) as device:
            results = evaluate_run(run_, threats, split=args.split, n=args.n, batch_size=args.batch_size,
                                   seed=args.seed, device=device, progress=not args.no_progress and main, warn=False,
                                   log=print if main else None, resume=partial,
                                   max_memory=max_memory(args))  # fmt: skip
        if not main:
            return 0
        written = write_results(results, out, run_.name)
    for table in threat_tables(results):
        print("\n" + table.to_markdown())
    print("\n" + format_summary(results))
    print("\nwrote " + ", ".join(str(p) for p in [out, *written]))
    return 0
