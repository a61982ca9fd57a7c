"""AutoAttack benchmark (plain script, CPU): APGD per-step overhead, and the standard ensemble beside torchattacks.

Usage::

    python benchmarks/bench_autoattack.py [--quick] [--threads N] [--clock cpu] [--n 300] [--eps 8 4]
                                          [--only overhead|ensemble]

(a) ``ratio = time(APGD-k) / (k · time(one forward + input-gradient backward))`` on the untrained, centred
    phantom-like models of ``bench_attacks.py`` (small_cnn and resnet18 with the CIFAR stem, 1×64×64 inputs), the
    two timings interleaved and the best of several rounds taken; APGD runs without early stop so that every
    sample takes all ``k`` steps; target ≤ 1.10.
(b) the standard AutoAttack ensemble, ``medrobust.attacks.AutoAttack(norm="linf", version="standard")`` (APGD-CE,
    APGD-T over 9 targets, Square; APGD 100 iterations, Square 5,000 queries), beside torchattacks' ``AutoAttack``
    with the same budgets set explicitly (its APGD, APGD-T and FAB-T ``steps``, Square ``n_queries``; torchattacks
    defaults to 10 iterations), on a small_cnn trained for a few epochs on Fashion-MNIST (10 classes), attacking
    the same test images with the same model in one process: robust accuracy (re-checked by a forward at the
    returned points, which must also lie in the ε-ball and in [0, 1]) and time per L∞ ε.

torchattacks needs torchvision, which does not load beside every CPU torch build; run the script with the
python of a venv that has torch, torchvision and torchattacks (see the README). Without torchattacks, (b) runs
medrobust's ensemble alone and says why the peer is missing. On a shared machine use ``--threads 1 --clock cpu``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from bench_attacks import overhead, setup
from bench_methods import pretrained
from interleaved import CLOCKS
from torch import Tensor, nn

from medrobust import data
from medrobust.attacks import APGD, AutoAttack
from medrobust.errors import DataError
from medrobust.runtime import eval_mode
from medrobust.tasks.base import Task

Row = tuple[str, float, float, str]  # contender, robust accuracy, seconds, notes


def overhead_table(steps: int, rounds: int, batch: dict[str, int], clock: Callable[[], float]) -> None:
    """Print APGD-``steps`` time ÷ (``steps`` × forward+input-gradient) per model."""
    print(f"| model | batch | fwd+grad (s) | APGD-{steps} (s) | ratio APGD-{steps} / ({steps} × fwd+grad) |")
    print("|---|---|---|---|---|")
    attack = APGD(norm="linf", steps=steps, early_stop=False)
    for name, size in batch.items():
        unit, run = overhead(*setup(name, size), attack, rounds, clock)
        print(f"| {name} | {size} | {unit:.4f} | {run:.3f} | {run / (steps * unit):.3f} |", flush=True)


def peer() -> tuple[Any, str]:
    """The torchattacks module, or None and the reason it is unavailable."""
    try:
        import torchattacks  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or torchvision failing to load beside this torch
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return torchattacks, f"torchattacks {torchattacks.__version__}"


def robust(model: nn.Module, task: Task, x: Tensor, x_adv: Tensor, y: Tensor, eps: float) -> float:
    """Robust accuracy re-checked at the returned points, after checking they are valid perturbations."""
    x_adv = x_adv.detach()
    gap = float((x_adv - x).abs().max())
    if gap > eps + 1e-5 or float(x_adv.min()) < 0 or float(x_adv.max()) > 1 or not torch.isfinite(x_adv).all():
        raise RuntimeError(f"invalid adversarial points: L∞ distance {gap:.5f} > ε {eps:.5f} or outside [0, 1]")
    with eval_mode(model), torch.no_grad():
        return float(task.correct(model(x_adv), y).float().mean())


def ensemble_rows(
    model: nn.Module, task: Task, x: Tensor, y: Tensor, eps: float, steps: int, queries: int,
    ta: Any, clock: Callable[[], float],
) -> list[Row]:  # fmt: skip
    """medrobust's standard AutoAttack and (when available) torchattacks' at the same budgets."""
    ours = AutoAttack(norm="linf", version="standard", steps=steps, queries=queries)
    start = clock()
    result = ours(model, x, y, task=task, eps=eps, generator=torch.Generator().manual_seed(0))
    secs = clock() - start
    acc = robust(model, task, x, result.x_adv, y, eps)
    if abs(acc - (1 - float(result.fooled.float().mean()))) > 1e-9:
        raise RuntimeError("medrobust's AutoAttack reports a robust accuracy its points do not reproduce")
    broken = result.details["broken_by"]
    names = result.details["members"]
    parts = [f"{n} {int((broken == k).sum())}" for k, n in enumerate(names)]
    rows: list[Row] = [("medrobust AutoAttack", acc, secs, "broken by: " + ", ".join(parts))]
    if ta is None:
        return rows
    peer_attack = ta.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    members = peer_attack._autoattack.attacks  # APGD-CE, APGD-T, FAB-T, Square
    for member in members:
        if hasattr(member, "n_queries"):
            member.n_queries = queries
        else:
            member.steps = steps
    budgets = ", ".join(
        f"{type(m).__name__} {'n_queries' if hasattr(m, 'n_queries') else 'steps'} "
        f"{getattr(m, 'n_queries', getattr(m, 'steps', '?'))}"
        for m in members
    )
    multi = peer_attack._autoattack  # count what each member breaks (its private per-member records)
    multi._clear_multi_atk_records()
    multi._multi_atk_records += [0.0] * len(members)
    multi._accumulate_multi_atk_records = True
    torch.manual_seed(0)
    start = clock()
    x_adv = peer_attack(x, y)
    secs = clock() - start
    left = [int(r) for r in multi._multi_atk_records]
    parts = [f"{type(m).__name__} {left[k] - left[k + 1]}" for k, m in enumerate(members)]
    notes = f"broken by: {', '.join(parts)}; budgets: {budgets}"
    rows.append((f"torchattacks {ta.__version__} AutoAttack", robust(model, task, x, x_adv, y, eps), secs, notes))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, 10 APGD steps, 200 Square queries")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall time or process CPU time")
    parser.add_argument("--n", type=int, default=None, help="attacked test images (default 300, quick 64)")
    parser.add_argument("--eps", type=float, nargs="+", default=[8, 4], help="L∞ radii in 1/255 units")
    parser.add_argument("--train", type=int, default=None, help="training images (default 3,000, quick 1,000)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 3, quick 2)")
    parser.add_argument("--only", choices=["overhead", "ensemble"], default=None, help="run part (a) or (b) alone")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    steps, rounds, queries = (10, 2, 200) if quick else (100, 3, 5000)
    n = args.n or (64 if quick else 300)
    n_train, epochs = args.train or (1000 if quick else 3000), args.epochs or (2 if quick else 3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock\n")
    if args.only != "ensemble":
        print("(a) APGD overhead, L∞, inputs 1×64×64, untrained centred models (as bench_attacks.py), no early stop\n")
        overhead_table(steps, rounds, {"small_cnn": 8, "resnet18": 2} if quick else {"small_cnn": 32, "resnet18": 4},
                       clock)  # fmt: skip
        print()
    if args.only == "overhead":
        return
    ta, why = peer()
    try:
        train = data.load("fashion-mnist", split="train", n=n_train)
        test = data.load("fashion-mnist", split="test", n=n)
    except DataError as exc:
        print(f"(b) skipped: {exc}")
        return
    task = train.task()
    t0 = time.perf_counter()
    model = pretrained(train, task, epochs, 64).eval()
    x, y, _ = test.batch(torch.arange(len(test)))
    with torch.no_grad():
        clean = float(task.correct(model(x), y).float().mean())
    print(f"(b) standard AutoAttack, L∞, APGD {steps} iterations, Square {queries} queries; small_cnn trained "
          f"{epochs} epochs on {n_train} Fashion-MNIST images ({time.perf_counter() - t0:.0f} s); {n} test images, "
          f"clean accuracy {clean:.3f}; peer: {why if ta is not None else 'unavailable (' + why + ')'}\n")  # fmt: skip
    print("| ε | contender | robust accuracy | seconds | notes |")
    print("|---|---|---:|---:|---|")
    for e in args.eps:
        for name, acc, secs, notes in ensemble_rows(model, task, x, y, e / 255, steps, queries, ta, clock):
            print(f"| {e:g}/255 | {name} | {acc:.3f} | {secs:.1f} | {notes} |", flush=True)


if __name__ == "__main__":
    main()
