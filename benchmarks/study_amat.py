"""AMAT vs standard and SAT (two ε) on the dense phantom tasks (lesion segmentation, landmarks), in the regime of
issue 12: AMAT with its official defaults (adversarial term over every sample's final PGD point, permissive clean
predicate, start radius min(max(E − δ, δ), E)), E_max = 3 × the largest evaluated ε, δ·epochs / E_max = 1.5,
20 PGD steps in training, ``--seeds`` seeds (3 by default).

Each seed trains a standard U-Net from scratch (``--epochs-std``), then fine-tunes SAT (small and large ε) and AMAT
from it for ``--epochs``. Evaluation: L2 PGD (``--eval-steps``, step ε/10), each ε attacked from the clean input.
Output in ``OUT``: run folders, ``report.md`` (mean ± sd over seeds of Dice or mean radial error, and the
fraction of images meeting the task's predicate), ``metric_vs_eps.png`` with ±1 sd bands and ``margins_<seed>.png``
(AMAT's margin histograms over epochs). Resumable like study_ima.py.

Usage:
    python benchmarks/study_amat.py seg|landmark [--out runs/study-amat-seg]     # full: 30 epochs, 3 seeds
    python benchmarks/study_amat.py seg --smoke --out /tmp/smoke                   # minutes: proves it runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

from study_common import (
    STUDY_LRS,
    Spec,
    add_execution_options,
    curve,
    execution,
    finetune_jobs,
    plot_curves,
    plot_margin_histograms,
    run_all,
    summarise,
    write_report,
)

KINDS = {"seg": ("phantom-ct-seg", "dice", "Dice"), "landmark": ("phantom-ct-landmark", "mre", "mean radial error")}
EPS = [0.0, 0.1, 0.25, 0.5, 1.0]
SAT = (0.1, 0.5)
RATIO, E_MAX_FACTOR, STEPS = 1.5, 3.0, 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=30, help="adversarial fine-tuning epochs")
    parser.add_argument("--epochs-std", type=int, default=15, help="standard training epochs (the starting point)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=1000, help="training images")
    parser.add_argument("--n-eval", type=int, default=100)
    parser.add_argument("--width", type=int, default=16, help="U-Net base width")
    parser.add_argument("--lr-std", type=float, default=STUDY_LRS[0], help="Adam learning rate of the standard run")
    parser.add_argument("--eval-steps", type=int, default=100)
    parser.add_argument("--methods", default=None, help="comma-separated fine-tuned runs (sat, amat; default all)")
    parser.add_argument("--smoke", action="store_true", help="2+2 epochs, 2 seeds, 64 images, 5-step evaluation")
    add_execution_options(parser)
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.epochs_std, args.seeds, args.n, args.n_eval, args.eval_steps = 2, 2, "0,1", 64, 20, 5
    dataset, metric, metric_label = KINDS[args.kind]
    out = args.out or Path(f"runs/study-amat-{args.kind}")
    seeds = [int(s) for s in args.seeds.split(",")]
    e_max = E_MAX_FACTOR * max(EPS)
    delta = RATIO * e_max / args.epochs
    small, large = SAT
    methods = [
        Spec("standard", "standard", "{}", "standard"),
        Spec(f"sat-{small:g}", "pgd_at", f"{{norm: l2, eps: {small}, steps: {STEPS}}}", f"SAT ε {small:g}"),
        Spec(f"sat-{large:g}", "pgd_at", f"{{norm: l2, eps: {large}, steps: {STEPS}}}", f"SAT ε {large:g}"),
        Spec("amat", "amat", f"{{norm: l2, e_max: {e_max:g}, delta: {delta:g}, steps: {STEPS}}}",
             f"AMAT E_max {e_max:g}, δ {delta:.3g}"),
    ]  # fmt: skip
    if args.methods:
        wanted = args.methods.split(",")
        methods = [methods[0], *(m for m in methods[1:] if m.key.split("-")[0] in wanted or m.key in wanted)]
    common = ["--dataset", dataset, "--model", "unet", "--batch-size", "32", "--no-progress",
              "--set", f"model.options={{width: {args.width}}}",
              "--set", f"data.options={{size: 32, n: {args.n}}}"]  # fmt: skip
    levels = ",".join(f"{e:g}" for e in EPS)
    grid = ["--attack", "pgd", "--norm", "l2", "--eps", levels, "--steps", str(args.eval_steps), "--rel-step", "10",
            "--n", str(args.n_eval)]  # fmt: skip
    jobs = finetune_jobs(
        out, seeds, common, methods[1:], (args.epochs_std, args.epochs), cost=STEPS, lrs=(args.lr_std, STUDY_LRS[1])
    )
    docs = run_all(jobs, grid, execution(args))
    curves: dict[str, list[dict[float, float]]] = {}
    rates: dict[str, list[dict[float, float]]] = {}
    for seed in seeds:
        for m in methods:
            doc = docs[out / m.key / f"seed{seed}"]
            curves.setdefault(m.key, []).append(curve(doc, "pgd", metric))
            rates.setdefault(m.key, []).append(curve(doc, "pgd", "accuracy"))
    labels = {m.key: m.label for m in methods}
    regime = (
        f"{dataset} 32×32, U-Net width {args.width}, {args.n} training images; standard {args.epochs_std} epochs "
        f"(Adam {args.lr_std:g}), then SAT and AMAT fine-tuned {args.epochs} epochs (Adam {STUDY_LRS[1]:g}) from it; "
        f"seeds {seeds}; AMAT δ·epochs/E_max = "
        f"{delta * args.epochs / e_max:.2f}, E_max / largest ε = {e_max / max(EPS):.1f}; {STEPS} PGD steps in "
        f"training; evaluation: L2 PGD-{args.eval_steps} (step ε/10) on {args.n_eval} test images"
    )
    tables = [
        summarise(curves, labels, EPS, f"{metric_label} under L2 PGD, mean ± sd over seeds", auc=metric == "dice"),
        summarise(rates, labels, EPS, "fraction of images meeting the task's predicate, mean ± sd", auc=False),
    ]
    plot_curves(out / "metric_vs_eps.png", curves, labels, EPS, metric_label)
    figures = ["![metric vs ε](metric_vs_eps.png)"]
    for seed in seeds:
        run = out / "amat" / f"seed{seed}"
        if plot_margin_histograms(out / f"margins_seed{seed}.png", run, e_max, f"AMAT seed {seed}"):
            figures.append(f"![AMAT margins, seed {seed}](margins_seed{seed}.png)")
    write_report(
        out / "report.md", [f"# AMAT study: {args.kind}", regime, *(t.to_markdown() for t in tables), *figures]
    )
    print(regime + "\n\n" + "\n\n".join(t.to_markdown() for t in tables))


if __name__ == "__main__":
    main()
