"""IMA vs standard, SAT (two ε), TRADES and Fast-AT in the regime where the IMA paper saw its effect (issue 12).

Regime, scaled to a CPU: δ·epochs / E_max = 1.5 (the official runs: 1.5 on PathMNIST to 16.7 on COVID-CT),
E_max = 3 × the largest evaluated ε (official: 3.3-4×), 20 PGD steps for SAT, TRADES and IMA, IMA with its
official defaults (full-batch boundary search toward the final iterate, train-mode attack), ``--seeds`` seeds per
method (3 by default). Evaluation: L2 PGD with CE and margin losses, worst case per sample, ``--restarts`` random
restarts, step ε/10 (``--eval-steps`` 100). Output in ``OUT``: one run folder per method and seed, ``report.md``
(mean ± sd tables), ``accuracy_vs_eps.png`` (mean ± 1 sd bands) and ``margins_<seed>.png`` (IMA's margin
histograms over epochs). Resumable: re-running skips what is done and continues interrupted runs.

Usage:
    python benchmarks/study_ima.py phantom-ct [--out runs/study-ima-phantom-ct]        # full: 30 epochs, 3 seeds
    python benchmarks/study_ima.py fashion-mnist
    python benchmarks/study_ima.py phantom-ct --smoke --out /tmp/smoke                    # minutes: proves it runs
    python benchmarks/study_ima.py phantom-ct --methods standard,ima                      # a subset of the runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

from study_common import (
    Job,
    Spec,
    add_execution_options,
    curve,
    execution,
    plot_curves,
    plot_margin_histograms,
    run_all,
    summarise,
    write_report,
)

# dataset: (data options, evaluated ε, SAT radii)
DATASETS = {
    "phantom-ct": ("{size: 32, n: 1000}", [0.0, 0.05, 0.1, 0.2, 0.3], (0.1, 0.3)),
    "fashion-mnist": ("{n: 2000}", [0.0, 0.25, 0.5, 1.0, 1.5], (0.5, 1.5)),
}
RATIO = 1.5  # δ·epochs / E_max
E_MAX_FACTOR = 3.0  # E_max / largest evaluated ε
STEPS = 20
# relative cost of an update, for scheduling the costliest runs first: forward-backward passes; IMA adds its clean
# term and boundary search (IMA ÷ SAT 1.32 in benchmarks/bench_methods.py); SAT and TRADES ≈ STEPS
COST = {"standard": 1, "fast_at": 2, "ima": 1.32 * STEPS}


def specs(eps: list[float], sat: tuple[float, float], epochs: int) -> tuple[list[Spec], float, float]:
    """The study's methods, and IMA's E_max and δ."""
    e_max = E_MAX_FACTOR * max(eps)
    delta = RATIO * e_max / epochs
    small, large = sat
    return (
        [
            Spec("standard", "standard", "{}", "standard"),
            Spec(f"sat-{small:g}", "pgd_at", f"{{norm: l2, eps: {small}, steps: {STEPS}}}", f"SAT ε {small:g}"),
            Spec(f"sat-{large:g}", "pgd_at", f"{{norm: l2, eps: {large}, steps: {STEPS}}}", f"SAT ε {large:g}"),
            Spec("trades", "trades", f"{{norm: l2, eps: {large}, steps: {STEPS}}}", f"TRADES ε {large:g}"),
            Spec("fast_at", "fast_at", f"{{norm: l2, eps: {large}}}", f"Fast-AT ε {large:g}"),
            Spec(
                "ima",
                "ima",
                f"{{norm: l2, e_max: {e_max:g}, delta: {delta:g}, steps: {STEPS}}}",
                f"IMA E_max {e_max:g}, δ {delta:.3g}",
            ),
        ],
        e_max,
        delta,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n-eval", type=int, default=250, help="test images attacked")
    parser.add_argument("--eval-steps", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--n", type=int, default=None, help="training images (default: the dataset's study size)")
    parser.add_argument("--methods", default=None, help="comma-separated run names to include (default: all)")
    parser.add_argument("--smoke", action="store_true", help="3 epochs, 2 seeds, 200 images, 10-step evaluation")
    add_execution_options(parser)
    args = parser.parse_args()
    data, eps, sat = DATASETS[args.dataset]
    if args.smoke:
        args.epochs, args.seeds, args.n, args.n_eval, args.eval_steps, args.restarts = 3, "0,1", 200, 50, 10, 1
    if args.n is not None:
        data = data.split("n:")[0] + f"n: {args.n}}}"
    out = args.out or Path(f"runs/study-ima-{args.dataset}")
    seeds = [int(s) for s in args.seeds.split(",")]
    methods, e_max, delta = specs(eps, sat, args.epochs)
    if args.methods:
        methods = [m for m in methods if m.key.split("-")[0] in args.methods.split(",") or m.key in args.methods]
    levels = ",".join(f"{e:g}" for e in eps)
    grid = ["--norm", "l2", "--eps", levels, "--steps", str(args.eval_steps), "--rel-step", "10",
            "--loss", "ce,margin", "--restarts", str(args.restarts), "--n", str(args.n_eval)]  # fmt: skip
    common = ["--dataset", args.dataset, "--model", "small_cnn", "--epochs", str(args.epochs), "--no-progress",
              "--set", f"data.options={data}"]  # fmt: skip
    jobs = [
        Job(
            out / m.key / f"seed{seed}",
            [*common, "--method", m.method, "--seed", str(seed), "--set", f"method.options={m.options}"],
            cost=COST.get(m.method, STEPS),
        )
        for m in methods
        for seed in seeds
    ]
    docs = run_all(jobs, grid, execution(args))
    curves: dict[str, list[dict[float, float]]] = {}
    for m in methods:
        for seed in seeds:
            curves.setdefault(m.key, []).append(curve(docs[out / m.key / f"seed{seed}"], "pgd", "accuracy"))
    labels = {m.key: m.label for m in methods}
    regime = (
        f"{args.dataset}, small CNN, {args.epochs} epochs, seeds {seeds}; IMA δ·epochs/E_max = "
        f"{delta * args.epochs / e_max:.2f}, E_max / largest ε = {e_max / max(eps):.1f}, {STEPS} PGD steps in "
        f"training; evaluation: L2 PGD-{args.eval_steps} (step ε/10, CE and margin, {args.restarts} restart(s), worst "
        f"case) on {args.n_eval} test images"
    )
    table = summarise(curves, labels, eps, "accuracy under L2 PGD, mean ± sd over seeds", auc=True)
    plot_curves(out / "accuracy_vs_eps.png", curves, labels, eps, "accuracy")
    figures = ["![accuracy vs ε](accuracy_vs_eps.png)"]
    for seed in seeds:
        if plot_margin_histograms(
            out / f"margins_seed{seed}.png", out / "ima" / f"seed{seed}", e_max, f"IMA seed {seed}"
        ):
            figures.append(f"![IMA margins, seed {seed}](margins_seed{seed}.png)")
    write_report(out / "report.md", [f"# IMA study: {args.dataset}", regime, table.to_markdown(), *figures])
    print(regime + "\n\n" + table.to_markdown())


if __name__ == "__main__":
    main()
