"""``medrobust evaluate``: robustness of a trained run under attacks and noise → results.json, tables, plots."""

from __future__ import annotations

import argparse
import inspect
import warnings
from pathlib import Path

import torch

from medrobust.attacks import ATTACKS
from medrobust.corruptions import CORRUPTIONS
from medrobust.errors import ConfigError
from medrobust.evaluation import (
    Results,
    RobustnessCheckWarning,
    ThreatSpec,
    evaluate,
    parse_levels,
    parse_loss,
    parse_noise,
)
from medrobust.evaluation.summary import DENSE_PREFIXES
from medrobust.reporting import format_level, metrics_table, threat_table
from medrobust.reporting.card import write_card
from medrobust.reporting.tables import DEFAULT_METRICS
from medrobust.training.loop import resolve_device
from medrobust.training.runs import Run, load_run

NAME = "evaluate"
HELP = "evaluate a run under attacks (PGD, FGSM, …) and noise; writes results.json, tables and plots"
DEFAULT_EPS = {"linf": "0,1/255,2/255,4/255,8/255", "l2": "0,0.25,0.5,1,2"}
TABLE_METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "rmsce")


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by 'medrobust train' (or its checkpoint.pt)")
    add_threat_arguments(p)
    p.add_argument("--json", help="results file (default: RUN_DIR/results.json); tables and plots go beside it")


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
    p.add_argument("--steps", type=int, default=20, help="attack steps (default: 20)")
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def threats_from_args(args: argparse.Namespace) -> list[ThreatSpec]:
    """The threat grid described by the flags (names are checked against the registries)."""
    names = [n.strip() for a in (args.attack or ["pgd"]) for n in a.split(",") if n.strip()]
    threats = []
    if names != ["none"]:
        eps = parse_levels(args.eps or DEFAULT_EPS[args.norm])
        wanted = {"steps": args.steps, "loss": parse_loss(args.loss), "restarts": args.restarts}
        if args.rel_step is not None:
            wanted["rel_step"] = args.rel_step
        for name in names:
            params = inspect.signature(ATTACKS.get(name).factory).parameters
            options = {k: v for k, v in wanted.items() if k in params}
            threats.append(ThreatSpec.attack(name, norm=args.norm, eps=eps, **options))
    for text in args.noise:
        spec = parse_noise(text)
        CORRUPTIONS.get(spec.name)
        threats.append(spec)
    if not threats:
        raise ConfigError("nothing to evaluate: '--attack none' needs at least one --noise NAME:LEVELS")
    return threats


def check_args(args: argparse.Namespace) -> None:
    if args.rel_step is not None and not args.rel_step > 0:
        raise ConfigError(f"--rel-step must be > 0, got {args.rel_step}")
    for flag in ("steps", "restarts", "batch_size"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")


def evaluate_run(run_: Run, threats: list[ThreatSpec], args: argparse.Namespace, device: torch.device) -> Results:
    """Evaluate a loaded run on ``args.split`` under ``threats`` (failed checks are reported, not warned)."""
    data = run_.dataset(args.split)
    print(f"evaluating {run_.name} on {data.info.name} ({args.split}, n = {min(args.n or len(data), len(data))})")
    with warnings.catch_warnings():  # failed checks are printed in the summary
        warnings.simplefilter("ignore", RobustnessCheckWarning)
        results = evaluate(run_.model, data, run_.task, threats, seed=args.seed, batch_size=args.batch_size,
                           device=device, n=args.n, progress=not args.no_progress)  # fmt: skip
    results.model, results.method = run_.config.model.name, run_.config.method.name
    results.config["run"] = str(run_.path)
    return results


def run(args: argparse.Namespace) -> int:
    """Load the run, evaluate the threat grid, write results.json, tables and plots, print the summary."""
    check_args(args)
    threats = threats_from_args(args)
    device = resolve_device(args.device)
    run_ = load_run(args.run_dir, device=str(device))
    results = evaluate_run(run_, threats, args, device)
    out = Path(args.json) if args.json else run_.path / "results.json"
    written = write_outputs(results, out, run_.name)
    for spec in results.summary["threats"]:
        metrics = table_metrics(results, TABLE_METRICS)
        print("\n" + threat_table(results, spec["threat"], spec["norm"], metrics).to_markdown())
    print("\n" + format_summary(results))
    print("\nwrote " + ", ".join(str(p) for p in [out, *written]))
    return 0


def table_metrics(results: Results, default: tuple[str, ...]) -> tuple[str, ...]:
    """``default``, or for segmentation/landmark results their Dice / MRE / SDR metrics and the predicate rate."""
    dense = tuple(m for m in results.summary["clean"] if m.startswith(DENSE_PREFIXES))
    return (*dense, "accuracy") if dense else default


def write_outputs(results: Results, path: Path, name: str) -> list[Path]:
    """Save ``results`` at ``path`` and, beside it, the metrics table (.md/.csv/.tex) and the PNG figures."""
    from medrobust.reporting.plots import reliability_diagram, robustness_curves  # matplotlib: import on use

    results.save(path)
    folder = path.parent
    written = metrics_table(results, table_metrics(results, DEFAULT_METRICS)).save(folder / "robustness_table")
    for spec in results.summary["threats"]:
        tag = "_".join(p for p in (spec["threat"], spec["norm"]) if p)
        written.append(robustness_curves([(name, results)], folder / f"robustness_{tag}.png",
                                         threat=spec["threat"], norm=spec["norm"]))  # fmt: skip
    if results.summary.get("reliability"):  # dense tasks have no calibration
        written.append(reliability_diagram(results, folder / "reliability.png"))
    written += write_card(results, folder, name)  # card.json + card.md (robustness card)
    return written


def format_summary(results: Results) -> str:
    """A few lines: clean accuracy beside the majority rate, per threat its curve summaries, and failed checks."""
    s = results.summary
    if s["majority_rate"] is None:  # segmentation / landmarks: "accuracy" is the rate of Dice ≥ τ / error ≤ τ
        dense = ", ".join(f"{k} {v:.4f}" for k, v in s["clean"].items() if k.startswith(DENSE_PREFIXES))
        head = f"clean {dense}; predicate rate {s['clean_accuracy']:.4f} (n = {results.n})"
    else:
        rate = s["majority_rate"]
        head = f"clean accuracy {s['clean_accuracy']:.4f} (majority-class rate {rate:.4f}, n = {results.n})"
    lines = [head]
    for t in s["threats"]:
        tag = f"{t['threat']} {t['norm']}" if t["norm"] else t["threat"]
        curve = ", ".join(f"{format_level(v)}: {a:.3f}" for v, a in zip(t["levels"], t["accuracy"]))
        lines.append(f"{tag}: accuracy {curve}")
        if t["auc_robustness"] is not None:
            lines.append(f"  AUC-robustness {t['auc_robustness']:.4f}, mean accuracy {t['mean_accuracy']:.4f}")
    failed = results.failed_checks
    lines.append(f"checks: {len(results.checks) - len(failed)} passed, {len(failed)} failed")
    lines += [f"  ! {c['name']}: {c['message']}" for c in failed]
    return "\n".join(lines)
