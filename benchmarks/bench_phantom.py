"""Speed of the ``phantom-ct`` simulator (no disk cache): images per second at each size.

Budget: 3,000 images at 64×64 in at most 60 s on 2 CPU cores. The time includes building the sparse
projector of each size (done once per process). The simulator runs one torch thread whatever the setting.

Usage: ``python benchmarks/bench_phantom.py [--n 3000]``
"""

from __future__ import annotations

import argparse
import os
import time

from medrobust.data.phantom import simulate

BUDGET_S = 60.0


def rate(n: int, size: int) -> float:
    """Seconds to simulate ``n`` images of side ``size`` (first call of that size: includes the projector)."""
    start = time.perf_counter()
    simulate(n, size, seed=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="images at 64×64 (the budgeted run)")
    args = parser.parse_args()
    print(f"phantom-ct simulator on {os.cpu_count()} CPU cores")
    print(f"{'size':>5} {'images':>7} {'seconds':>8} {'images/s':>9}")
    rows = [(64, args.n), (28, 1000), (32, 1000), (128, 500)]
    total_64 = 0.0
    for size, n in rows:
        seconds = rate(n, size)
        total_64 = seconds if size == 64 else total_64
        print(f"{size:>5} {n:>7} {seconds:>8.1f} {n / seconds:>9.1f}", flush=True)
    verdict = "within" if total_64 <= BUDGET_S * args.n / 3000 else "OVER"
    print(f"{args.n} images at 64×64: {total_64:.1f} s ({verdict} the {BUDGET_S:.0f} s budget for 3000)")


if __name__ == "__main__":
    main()
