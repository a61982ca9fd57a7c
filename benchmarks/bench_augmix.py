"""Epoch time of AugMix and RobustAugMix relative to standard training, in one run on CPU.

Same data (phantom-ct 32×32), same model (small_cnn, pretrained for a few standard epochs), same batches: every
batch is fed to each method in turn (so load changes on the shared machine hit all alike), and each method's
time is its own process CPU time (``--clock wall`` for wall time); the median epoch is reported. ``pgd_at``
with the same attack as RobustAugMix (L∞ 4/255, 7 steps, eval mode) is timed too, as the adversarial reference.

Usage:
    python benchmarks/bench_augmix.py            # 512 images, 1 warm-up + 3 timed epochs
    python benchmarks/bench_augmix.py --quick    # 128 images, 1 warm-up + 2 timed epochs
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
from medrobust.data.base import ArrayDataset
from medrobust.methods import METHODS
from medrobust.tasks.classification import ClassificationTask

SPECS: list[tuple[str, str, dict[str, Any]]] = [
    ("standard", "standard", {}),
    ("augmix", "augmix (width 3, depth 1–3, severity 3; clean + 2 views in one forward)", {}),
    ("pgd_at", "pgd_at (L∞ 4/255, 7 steps)", {}),
    ("robust_augmix", "robust_augmix (clean + AugMix + PGD L∞ 4/255, 7 steps)", {}),
]


def contenders(base: nn.Module, train: ArrayDataset, task: ClassificationTask) -> list[Contender]:
    """Each method of :data:`SPECS` from a copy of ``base`` (SGD 0.01, momentum 0.9)."""
    out = []
    for key, label, options in SPECS:
        model = copy.deepcopy(base)
        method = METHODS.create(key, **options)
        method.setup(model, len(train), task)
        out.append(Contender(key, label, method, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 images, 1 warm-up and 2 timed epochs")
    parser.add_argument("--n", type=int, default=None, help="training images (default 512, quick 128)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="process CPU time or wall time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    n = args.n or (128 if args.quick else 512)
    warmup, timed = (1, 2) if args.quick else (1, 3)
    train = data.load("phantom-ct", split="train", size=32, n=n)
    task = train.task()
    torch.manual_seed(0)
    base = models.create("small_cnn", in_channels=1, num_outputs=task.output_dim)
    pre = Contender("pre", "standard", METHODS.create("standard"), base, torch.optim.SGD(base.parameters(), lr=0.05))
    for epoch in range(3):  # a common standard-pretrained start
        run_epoch([pre], train, task, -1 - epoch, args.batch_size, clock)
    everyone = contenders(pre.model, train, task)
    for epoch in range(warmup + timed):
        run_epoch(everyone, train, task, epoch, args.batch_size, clock)
    for c in everyone:
        c.seconds = c.seconds[warmup:]
    t = {c.key: statistics.median(c.seconds) for c in everyone}
    print(
        f"\nphantom-ct 32×32, n={n}, small_cnn (width 16), batch {args.batch_size}, {args.threads} CPU thread(s), "
        f"{args.clock} time, median of {timed} epochs after {warmup} warm-up (same standard-pretrained start)\n"
    )
    print("| method | epoch (s) | ÷ standard | last-epoch logs |")
    print("|---|---:|---:|---|")
    for c in everyone:
        logs = ", ".join(f"{k} {v:.3f}" for k, v in sorted(c.logs.items()))
        print(f"| {c.label} | {t[c.key]:.2f} | {t[c.key] / t['standard']:.2f} | {logs} |")
    print(f"\nrobust_augmix ÷ pgd_at: {t['robust_augmix'] / t['pgd_at']:.2f}")


if __name__ == "__main__":
    main()
