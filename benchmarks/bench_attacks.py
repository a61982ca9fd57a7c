"""Attack speed benchmark (plain script, CPU): PGD per-step overhead and ε-sweep reuse.

Usage::

    python benchmarks/bench_attacks.py [--quick] [--models small_cnn resnet18] [--threads N] [--clock cpu]

(a) ``ratio = time(PGD-k) / (k · time(one forward + input-gradient backward))`` on a batch of 1×64×64 inputs,
    the two timings interleaved and the best of several rounds taken (robust to other load); target ≤ 1.15.
(b) an 8-ε L∞ sweep of PGD-100: ``medrobust.evaluation.sweep.pgd_sweep`` (early stop, attacks only the
    survivors of the previous ε) against 8 independent PGD runs (with and without early stop).

The models are untrained, with the last bias shifted so that half the batch falls on each side, and the labels are
their clean predictions: clean accuracy is 100 % and robust accuracy falls to about 0 over the ε list.
On a shared machine use ``--threads 1 --clock cpu`` (process CPU time), which other processes do not inflate.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from interleaved import CLOCKS
from torch import Tensor, nn

from medrobust import models
from medrobust.attacks import PGD
from medrobust.evaluation.sweep import build_attack, pgd_sweep
from medrobust.runtime import fork_generators
from medrobust.tasks import ClassificationTask

TASK = ClassificationTask(kind="binary")
EPS = [i * 0.15 / 255 for i in range(8)]  # spans the margins of the centred untrained models


def setup(name: str, batch: int) -> tuple[nn.Module, Tensor, Tensor]:
    """An eval-mode model with centred logits, a random batch, and its clean predictions as labels."""
    torch.manual_seed(0)
    model = models.create(name, in_channels=1, num_outputs=1).eval()
    x = torch.rand(batch, 1, 64, 64)
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        assert last.bias is not None
        last.bias.sub_(model(x).flatten().median())
        y = (model(x).flatten() > 0).long()
    return model, x, y


def seconds(fn: Callable[[], object], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def overhead(
    model: nn.Module, x: Tensor, y: Tensor, attack: Callable[..., object], rounds: int, clock: Callable[[], float]
) -> tuple[float, float]:
    """Best-of-rounds seconds of one forward+input-gradient backward, and of one run of ``attack`` (ε = 1/255),
    the two interleaved round by round."""

    def unit() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(TASK.loss(model(xr), y).sum(), xr)

    gen = torch.Generator().manual_seed(0)
    unit()  # warm-up
    attack(model, x, y, task=TASK, eps=1 / 255, generator=gen)
    units, runs = [], []
    for _ in range(rounds):
        units.append(min(seconds(unit, clock) for _ in range(3)))
        runs.append(seconds(lambda: attack(model, x, y, task=TASK, eps=1 / 255, generator=gen), clock))
    return min(units), min(runs)


def sweep_rows(
    model: nn.Module, x: Tensor, y: Tensor, steps: int, clock: Callable[[], float]
) -> list[tuple[str, float, list[float]]]:
    """(method, seconds, robust accuracy per ε) for the sweep and for independent runs."""
    rows = []
    for early in (False, True):
        attack = build_attack("pgd", norm="linf", steps=steps, early_stop=early)
        gens = fork_generators(torch.Generator().manual_seed(0), len(EPS))  # the sweep's per-ε starts
        start = clock()
        acc = [
            1 - float(attack(model, x, y, task=TASK, eps=e, generator=g).fooled.float().mean())
            for e, g in zip(EPS, gens)
        ]
        rows.append((f"8 independent runs{', early stop' if early else ''}", clock() - start, acc))
    attack = build_attack("pgd", norm="linf", steps=steps, early_stop=True)
    gen = torch.Generator().manual_seed(0)
    start = clock()
    results = pgd_sweep(model, x, y, task=TASK, attack=attack, eps_list=EPS, generator=gen)
    rows.append(("pgd_sweep", clock() - start, [1 - float(r.fooled.float().mean()) for r in results]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches and few steps (about a minute)")
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet18"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall time or process CPU time")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = {"small_cnn": 8, "resnet18": 2} if args.quick else {"small_cnn": 32, "resnet18": 4}
    k, rounds, sweep_steps = (5, 2, 20) if args.quick else (20, 3, 100)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, inputs 1×64×64, L∞ PGD\n")
    print(f"| model | batch | fwd+grad (s) | PGD-{k} (s) | ratio PGD-{k} / ({k} × fwd+grad) |")
    print("|---|---|---|---|---|")
    for name in args.models:
        unit, pgd = overhead(*setup(name, batch[name]), PGD(norm="linf", steps=k), rounds, clock)
        print(f"| {name} | {batch[name]} | {unit:.4f} | {pgd:.3f} | {pgd / (k * unit):.3f} |", flush=True)
    print(f"\nε = {', '.join(f'{e * 255:.2f}' for e in EPS)} (/255), PGD-{sweep_steps}\n")
    print("| model | batch | method | seconds | speed-up | robust accuracy per ε |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        rows = sweep_rows(*setup(name, batch[name]), sweep_steps, clock)
        base = rows[0][1]
        for method, secs, acc in rows:
            accs = " ".join(f"{a:.2f}" for a in acc)
            print(f"| {name} | {batch[name]} | {method} | {secs:.1f} | {base / secs:.1f}× | {accs} |", flush=True)


if __name__ == "__main__":
    main()
