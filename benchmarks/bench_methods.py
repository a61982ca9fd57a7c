"""Epoch-time benchmark of the adversarial training methods on CPU.

Same data (phantom-ct 32×32), same model (small_cnn) and the same number of PGD steps for IMA and SAT (20, IMA's
published setting); the methods run interleaved batch by batch so that load changes on the machine hit every
method alike, and the median epoch time is reported (process CPU time by default, which a busy machine disturbs
less than wall time). Targets: IMA / SAT ≤ 1.20 with IMA's official full-batch boundary search and both attacks in
train mode (issue 12), and Fast-AT / standard ≤ 2.5; the subset search and the Illinois search are reported beside.

Beside the measured ratios the script prints the ratio that the passes alone imply (the cost model): a SAT step is
``steps`` forward + input-gradient passes, the forward of the final iterate and the update's forward + backward;
IMA adds the clean forward + backward of its ``(1 − β)`` term and ``R`` gradient-free forwards of the whole batch
for the boundary search (R = 10 halvings, official; 4 Illinois steps). The unit costs are measured on the same
model and batch, so ``IMA / SAT`` cannot fall below the model's value whatever the bookkeeping costs.

IMA backpropagates its clean term before the attack, so that forward's graph is freed rather than kept alive through
the attack as in the official code: with glibc's default malloc settings a live graph made each attack pass slower
(large freed tensors went back to the system and were page-faulted in again). Setting ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` high shows what the allocator still costs.

Usage:
    python benchmarks/bench_methods.py            # 512 images, 2 warm-up + 3 timed epochs
    python benchmarks/bench_methods.py --quick    # 128 images, 1 warm-up + 2 timed epochs
    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 python benchmarks/bench_methods.py --quick
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from interleaved import CLOCKS, Contender, run_epoch
from torch import nn

from medrobust import data, models
from medrobust.data.base import ArrayDataset
from medrobust.methods import METHODS
from medrobust.tasks.classification import ClassificationTask


def pretrained(train: ArrayDataset, task: ClassificationTask, epochs: int, batch_size: int) -> nn.Module:
    """small_cnn after a few standard epochs, the common starting point of every contender."""
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=task.output_dim)
    c = Contender(
        "pretrain",
        "standard",
        METHODS.create("standard"),
        model,
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        torch.Generator().manual_seed(0),
    )
    c.method.setup(model, len(train), task)
    for epoch in range(epochs):
        run_epoch([c], train, task, -1 - epoch, batch_size, CLOCKS["cpu"])
    return model


def contenders(
    base: nn.Module, train: ArrayDataset, task: ClassificationTask, steps: int, eps: float
) -> list[Contender]:
    """Each method (key, label, registry name, options) starting from a copy of ``base``."""
    sat = {"norm": "l2", "eps": eps, "steps": steps}
    ima = {"steps": steps, "e_max": eps, "delta": eps / 10}
    specs: list[tuple[str, str, str, dict[str, Any]]] = [
        ("standard", "standard", "standard", {}),
        ("fast_at", "fast_at (L∞ 8/255)", "fast_at", {}),
        ("sat", f"pgd_at (SAT, L2 ε={eps:g}, {steps} steps, eval-mode attack: default)", "pgd_at", sat),
        ("sat_train", "pgd_at, train-mode attack", "pgd_at", {**sat, "train_mode": True}),
        ("ima", f"ima (L2, E_max={eps:g}, {steps} steps; official: full-batch search, train mode)", "ima", ima),
        (
            "ima_subset",
            "ima, subset search (clean-correct flipped samples only)",
            "ima",
            {**ima, "search_batch": "subset"},
        ),
        ("ima_fast", "ima, Illinois search (4 steps), full batch", "ima", {**ima, "refine": "illinois"}),
        (
            "ima_fast_subset",
            "ima, Illinois search, subset",
            "ima",
            {**ima, "refine": "illinois", "search_batch": "subset"},
        ),
    ]
    out = []
    for key, label, name, options in specs:
        model = copy.deepcopy(base)
        method = METHODS.create(name, **options)
        method.setup(model, len(train), task)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        out.append(Contender(key, label, method, model, opt, torch.Generator().manual_seed(1)))
    return out


def unit_costs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: ClassificationTask) -> dict[str, float]:
    """Median process-CPU seconds of the passes a training step is made of, on ``model`` in train mode:
    ``F`` forward with a graph, ``F0`` forward without gradients, ``Bx`` the input gradient (PGD), ``Bw`` the
    parameter gradient (update).

    Shape:
        - x: ``(B, C, H, W)``; y: ``(B,)``.
    """

    def forward() -> None:
        model(x.clone().requires_grad_(True))

    def forward_no_grad() -> None:
        with torch.no_grad():
            model(x)

    def input_gradient() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(task.loss(model(xr), y).sum(), xr)

    def parameter_gradient() -> None:
        task.loss(model(x), y).mean().backward()

    def seconds(fn: Callable[[], None], reps: int = 5) -> float:
        fn()
        times = []
        for _ in range(reps):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        return statistics.median(times)

    model.train()
    f, f0 = seconds(forward), seconds(forward_no_grad)
    costs = {"F": f, "F0": f0, "Bx": seconds(input_gradient) - f, "Bw": seconds(parameter_gradient) - f}
    model.zero_grad(set_to_none=True)
    return costs


def pass_bound(c: dict[str, float], steps: int, search_steps: int) -> tuple[float, float]:
    """Seconds of a SAT step and of an IMA step (full-batch search of ``search_steps`` forwards) from unit costs."""
    sat = steps * (c["F"] + c["Bx"]) + c["F0"] + c["F"] + c["Bw"]
    return sat, sat + c["F"] + c["Bw"] + search_steps * c["F0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 images, 1 warm-up and 2 timed epochs")
    parser.add_argument("--n", type=int, default=None, help="training images (default 512, quick 128)")
    parser.add_argument("--steps", type=int, default=20, help="PGD steps of SAT and IMA (IMA's published 20)")
    parser.add_argument("--eps", type=float, default=1.0, help="SAT radius and IMA E_max (L2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="process CPU time or wall time")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    n = args.n or (128 if args.quick else 512)
    warmup, timed = (1, 2) if args.quick else (2, 3)
    train = data.load("phantom-ct", split="train", size=32, n=n)
    task = train.task()
    base = pretrained(train, task, 6, args.batch_size)
    x, y, _ = train.batch(torch.arange(min(args.batch_size, n)))
    costs = unit_costs(copy.deepcopy(base), x, y, task)
    everyone = contenders(base, train, task, args.steps, args.eps)
    for epoch in range(warmup + timed):
        run_epoch(everyone, train, task, epoch, args.batch_size, clock)
    t = {c.key: statistics.median(c.seconds[warmup:]) for c in everyone}
    print(
        f"\nphantom-ct 32×32, n={n}, small_cnn (width 16), batch {args.batch_size}, {args.threads} CPU thread(s), "
        f"median {args.clock} time of {timed} epochs after {warmup} warm-up (all from the same standard-pretrained "
        "weights)\n"
    )
    print("| method | epoch (s) | last-epoch logs |")
    print("|---|---:|---|")
    for c in everyone:
        logs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(c.logs.items()))
        print(f"| {c.label} | {t[c.key]:.2f} | {logs} |")
    print("\n| ratio | measured | target |")
    print("|---|---:|---:|")
    rows = [
        ("IMA (official full-batch search) / SAT, both attacks in train mode", "ima", "sat_train", "≤ 1.20"),
        ("IMA subset search / SAT, both in train mode", "ima_subset", "sat_train", "—"),
        ("IMA Illinois, full batch / SAT, both in train mode", "ima_fast", "sat_train", "—"),
        ("IMA Illinois, subset / SAT, both in train mode", "ima_fast_subset", "sat_train", "—"),
        ("IMA (official) / SAT default (SAT attacks in eval mode)", "ima", "sat", "—"),
    ]
    for label, a, b, target in rows:
        print(f"| {label} | {t[a] / t[b]:.2f} | {target} |")
    print(f"| Fast-AT / standard | {t['fast_at'] / t['standard']:.2f} | ≤ 2.5 |")
    units = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in costs.items())
    print(f"\nCost model (train mode, batch {len(x)}: {units}): the ratio the passes alone imply\n")
    print("| IMA / SAT from pass counts | ratio |")
    print("|---|---:|")
    sat, official = pass_bound(costs, args.steps, 10)
    print(f"| official: clean term + 10 search forwards | {official / sat:.2f} |")
    print(f"| the 10 search forwards alone | {(sat + 10 * costs['F0']) / sat:.2f} |")
    print(f"| Illinois: clean term + 4 search forwards | {pass_bound(costs, args.steps, 4)[1] / sat:.2f} |")


if __name__ == "__main__":
    main()
