"""AMAT vs standard and SAT (two ε) on lesion detection (``phantom-ct-det``, CenterNet ResNet-FPN), in the regime of
the dense AMAT study (study_amat.py): AMAT with its official detection rules (adversarial term over every
sample's final PGD point, refined margins floored at δ, α = 5; amat_conf ``yolov5/train_AMAT.py``),
E_max = 3 × the largest evaluated ε, δ·epochs / E_max = 1.5, 20 PGD steps in training, ``--seeds`` seeds.

Each seed trains a standard detector from scratch (``--epochs-std``), then fine-tunes SAT (small and large ε) and
AMAT from it for ``--epochs``. Evaluation as in the AMAT paper's detection experiment: L2 PGD on the detection
loss (``--eval-steps``, 100 by default, step ε/10), each ε attacked from the clean input, scored by COCO
mAP@0.5:0.95. Output in ``OUT``: run folders, ``report.md`` (mean ± sd over seeds of mAP@0.5:0.95, mAP@0.5 and
the fraction of images whose every lesion is found with no false alarm), ``map_vs_eps.png`` with ±1 sd bands and
``margins_seed<N>.png`` (AMAT's margins over epochs). Resumable like study_amat.py; the generated data are cached
in ``$MEDROBUST_CACHE`` (default ``~/.cache/medrobust``).

Usage:
    python benchmarks/study_detection.py [--out runs/study-detection] [--device cuda]   # full: 3 seeds
    python benchmarks/study_detection.py --smoke --out /tmp/smoke                        # minutes on a CPU
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

EPS = [0.0, 0.1, 0.25, 0.5, 1.0]  # L2 at 64×64: a standard detector's mAP is near 0 by ε 0.5 (PGD-5)
SAT = (0.1, 0.5)
RATIO, E_MAX_FACTOR, STEPS = 1.5, 3.0, 20
METRICS = (
    ("map", "mAP@0.5:0.95"),
    ("map@0.5", "mAP@0.5"),
    ("accuracy", "fraction of images with every lesion found and no false alarm"),
)


def _methods(e_max: float, delta: float) -> list[Spec]:
    small, large = SAT
    return [
        Spec("standard", "standard", "{}", "standard"),
        Spec(f"sat-{small:g}", "pgd_at", f"{{norm: l2, eps: {small}, steps: {STEPS}}}", f"SAT ε {small:g}"),
        Spec(f"sat-{large:g}", "pgd_at", f"{{norm: l2, eps: {large}, steps: {STEPS}}}", f"SAT ε {large:g}"),
        Spec("amat", "amat", f"{{norm: l2, e_max: {e_max:g}, delta: {delta:g}, steps: {STEPS}}}",
             f"AMAT E_max {e_max:g}, δ {delta:.3g}"),
    ]  # fmt: skip


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/study-detection"))
    parser.add_argument("--epochs", type=int, default=10, help="adversarial fine-tuning epochs")
    parser.add_argument("--epochs-std", type=int, default=20, help="standard training epochs (the starting point)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=1000, help="images per split")
    parser.add_argument("--size", type=int, default=64, help="image side")
    parser.add_argument("--n-eval", type=int, default=200, help="test images under attack")
    parser.add_argument("--eval-steps", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="2+2 epochs, 2 seeds, 32 images of 32², 5-step attack")
    add_execution_options(parser)
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.epochs_std, args.seeds, args.n, args.size = 2, 2, "0,1", 32, 32
        args.n_eval, args.eval_steps = 16, 5
    return args


def main() -> None:
    args = _arguments()
    out: Path = args.out
    seeds = [int(s) for s in args.seeds.split(",")]
    e_max = E_MAX_FACTOR * max(EPS)
    delta = RATIO * e_max / args.epochs
    methods = _methods(e_max, delta)
    common = ["--dataset", "phantom-ct-det", "--model", "centernet", "--batch-size", "32", "--optimizer", "adam",
              "--no-progress", "--set", "model.options={width: 16}",
              "--set", f"data.options={{size: {args.size}, n: {args.n}}}"]  # fmt: skip
    levels = ",".join(f"{e:g}" for e in EPS)
    grid = ["--attack", "pgd", "--norm", "l2", "--eps", levels, "--steps", str(args.eval_steps), "--rel-step", "10",
            "--n", str(args.n_eval)]  # fmt: skip
    curves: dict[str, dict[str, list[dict[float, float]]]] = {metric: {} for metric, _ in METRICS}
    jobs = finetune_jobs(out, seeds, common, methods[1:], (args.epochs_std, args.epochs), cost=STEPS)
    docs = run_all(jobs, grid, execution(args))
    for seed in seeds:
        for m in methods:
            doc = docs[out / m.key / f"seed{seed}"]
            for metric, _ in METRICS:
                curves[metric].setdefault(m.key, []).append(curve(doc, "pgd", metric))
    labels = {m.key: m.label for m in methods}
    regime = (
        f"phantom-ct-det {args.size}×{args.size} (0-3 lesions per slice), CenterNet ResNet-FPN width 16, {args.n} "
        f"training images; standard {args.epochs_std} epochs (Adam {STUDY_LRS[0]:g}), then SAT and AMAT fine-tuned "
        f"{args.epochs} epochs (Adam {STUDY_LRS[1]:g}) from it; seeds {seeds}; AMAT δ·epochs/E_max = "
        f"{delta * args.epochs / e_max:.2f}, E_max / largest ε = {e_max / max(EPS):.1f}; {STEPS} PGD steps in "
        f"training; evaluation: L2 PGD-{args.eval_steps} (step ε/10) on the detection loss, {args.n_eval} test images"
    )
    tables = [summarise(curves[metric], labels, EPS, f"{label} under L2 PGD, mean ± sd over seeds", auc=True)
              for metric, label in METRICS]  # fmt: skip
    plot_curves(out / "map_vs_eps.png", curves["map"], labels, EPS, "COCO mAP@0.5:0.95")
    figures = ["![mAP vs ε](map_vs_eps.png)"]
    for seed in seeds:
        if plot_margin_histograms(out / f"margins_seed{seed}.png", out / "amat" / f"seed{seed}", e_max, f"AMAT {seed}"):
            figures.append(f"![AMAT margins, seed {seed}](margins_seed{seed}.png)")
    write_report(out / "report.md", ["# Detection study", regime, *(t.to_markdown() for t in tables), *figures])
    print(regime + "\n\n" + "\n\n".join(t.to_markdown() for t in tables))


if __name__ == "__main__":
    main()
