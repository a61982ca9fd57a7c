"""Epoch-time benchmark of AMAT vs SAT (PGD-AT) on a dense task, CPU.

Same data (phantom-ct-seg or phantom-ct-landmark, 32×32), same model (U-Net) and the same number of PGD steps for
AMAT and SAT; the methods run interleaved batch by batch from the same standard-pretrained weights, so that load
changes on the machine hit every method alike, and the median epoch time (process CPU time by default) is
reported. Target (issue 6): AMAT / SAT ≤ 1.15.

Usage:
    python benchmarks/bench_dense.py                 # segmentation, 256 images, 1 warm-up + 3 timed epochs
    python benchmarks/bench_dense.py --quick         # 64 images, 1 warm-up + 2 timed epochs
    python benchmarks/bench_dense.py --dataset phantom-ct-landmark
"""

from __future__ import annotations

import argparse
import copy
import statistics
from typing import Any

import torch
from interleaved import CLOCKS, Contender, run_epoch
from torch import nn

from medrobust import data, models
from medrobust.methods import METHODS
from medrobust.tasks.base import Task


def make(key: str, label: str, name: str, options: dict[str, Any], base: nn.Module, n: int, task: Task) -> Contender:
    model = copy.deepcopy(base)
    method = METHODS.create(name, **options)
    method.setup(model, n, task)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Contender(key, label, method, model, opt, torch.Generator().manual_seed(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="phantom-ct-seg", choices=("phantom-ct-seg", "phantom-ct-landmark"))
    parser.add_argument("--quick", action="store_true", help="64 images, 1 warm-up and 2 timed epochs")
    parser.add_argument("--n", type=int, default=None, help="training images (default 256, quick 64)")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of both methods")
    parser.add_argument("--eps", type=float, default=1.0, help="SAT radius (L2); AMAT starts at δ = eps/10")
    parser.add_argument("--width", type=int, default=16, help="U-Net width")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="process CPU time or wall time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = CLOCKS[args.clock]
    n = args.n or (64 if args.quick else 256)
    warmup, timed = (1, 2) if args.quick else (1, 3)
    train = data.load(args.dataset, split="train", size=32, n=n)
    task = train.task()
    torch.manual_seed(0)
    base = models.create("unet", in_channels=1, num_outputs=task.output_dim, width=args.width)
    pre = make("pre", "standard", "standard", {}, base, n, task)
    for e in range(3):
        run_epoch([pre], train, task, -1 - e, args.batch_size, clock)
    sat = {"norm": "l2", "eps": args.eps, "steps": args.steps}
    amat = {"steps": args.steps, "delta": args.eps / 10}
    specs = [
        ("sat", f"pgd_at (SAT, L2 ε={args.eps:g}, eval-mode attack: default)", "pgd_at", sat),
        ("sat_train", "pgd_at, train-mode attack", "pgd_at", {**sat, "train_mode": True}),
        ("amat", "amat (train-mode attack: published default)", "amat", amat),
        ("amat_eval", "amat, eval-mode attack", "amat", {**amat, "train_mode_attack": False}),
    ]
    everyone = [make(k, lbl, name, opts, pre.model, n, task) for k, lbl, name, opts in specs]
    for e in range(warmup + timed):
        run_epoch(everyone, train, task, e, args.batch_size, clock)
    t = {c.key: statistics.median(c.seconds[warmup:]) for c in everyone}
    print(f"\n{args.dataset} 32×32, n={n}, unet (width {args.width}), batch {args.batch_size}, {args.steps} PGD steps, "
          f"1 CPU thread, median {args.clock} time of {timed} epochs after {warmup} warm-up\n")  # fmt: skip
    print("| method | epoch (s) |\n|---|---:|")
    for c in everyone:
        print(f"| {c.label} | {t[c.key]:.2f} |")
    print("\n| ratio | measured | target |\n|---|---:|---:|")
    print(
        f"| AMAT / SAT (defaults: AMAT attacks in train mode, SAT in eval mode) | {t['amat'] / t['sat']:.2f} | ≤ 1.15 |"
    )
    print(f"| AMAT / SAT (both attacks in train mode) | {t['amat'] / t['sat_train']:.2f} | ≤ 1.15 |")
    print(f"| AMAT / SAT (both attacks in eval mode) | {t['amat_eval'] / t['sat']:.2f} | ≤ 1.15 |")


if __name__ == "__main__":
    main()
