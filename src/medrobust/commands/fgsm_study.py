"""``medrobust fgsm-study``: the retrain-percentage × ε grid of FGSM-augmentation fine-tuning from one run."""

from __future__ import annotations

import argparse

from medrobust.errors import ConfigError
from medrobust.evaluation.threats import parse_number
from medrobust.reporting.binary import fgsm_study_markdown, write_fgsm_study
from medrobust.studies.fgsm_study import Grid, run_study

NAME = "fgsm-study"
HELP = (
    "fine-tune a trained binary run with FGSM augmentation over a retrain-percentage × ε grid (Yan et al., "
    "MRNet); table and ROC curves before vs after, clean and under FGSM"
)


def configure(p: argparse.ArgumentParser) -> None:
    """Add the ``fgsm-study`` options."""
    p.add_argument("run_dir", metavar="RUN", help="trained binary run folder (medrobust train …)")
    p.add_argument("--percent", default="1,2,6,10", help="retrain percentages, comma-separated (default: 1,2,6,10)")
    p.add_argument(
        "--eps",
        default="1e-5,1e-3,3e-3",
        help="FGSM ε list for training and evaluation (default: 1e-5,1e-3,3e-3; fractions such as 1/255 allowed)",
    )
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per cell (default: 1)")
    p.add_argument("--lr", type=float, help="fine-tuning learning rate (default: the run's)")
    p.add_argument("--mode", default="replace", choices=("replace", "add"), help="replace or add the FGSM examples")
    p.add_argument("--norm", default="linf", choices=("linf", "l2"), help="FGSM norm (default: linf, the paper's)")
    p.add_argument("--no-control", action="store_true", help="skip the p = 0 control fine-tuning")
    p.add_argument("--split", default="test", choices=("val", "test"), help="evaluation split (default: test)")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="study folder: cells/*/ runs, study.json, study.md, roc_eps*.png")


def _number(text: str, flag: str) -> float:
    """``parse_number`` with ``flag`` named in its error (its own message speaks of attack levels)."""
    try:
        return parse_number(text)
    except ConfigError:
        raise ConfigError(f"{flag}: {text.strip()!r} is not a number >= 0; write e.g. 1, 0.5, 1e-3 or 1/255") from None


def _numbers(text: str, flag: str) -> tuple[float, ...]:
    values = tuple(_number(t, flag) for t in text.split(",") if t.strip())
    if not values:
        raise ConfigError(f"{flag} needs at least one number, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    """Run the grid, print the tables and write the study files."""
    grid = Grid(
        _numbers(args.percent, "--percent"),
        _numbers(args.eps, "--eps"),
        epochs=args.epochs,
        lr=args.lr,
        mode=args.mode,
        norm=args.norm,
        control=not args.no_control,
    )
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    result = run_study(
        args.run_dir,
        args.out,
        grid,
        split=args.split,
        batch_size=args.batch_size,
        seed=args.seed,
        log=lambda s: print(s, flush=True),
    )
    print("\n" + fgsm_study_markdown(result))
    paths = write_fgsm_study(result, args.out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
