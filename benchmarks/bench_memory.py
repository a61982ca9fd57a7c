"""Peak memory of a 3D evaluation with and without a memory budget (``evaluate --max-memory``).

A small 3D CNN (``small_cnn``, width 8, ``spatial_dims=3``) is evaluated on random 1×64³ volumes under PGD (L∞,
ε ∈ {0, 8/255}) and the sanity-check probes (on 2 volumes), once without a budget and once per budget. Each
evaluation runs in a fresh child process, so its peak resident set size (``ru_maxrss``) is its own; the baseline is
the same child's RSS once torch, the model and the data are loaded. The budget covers the activations autograd
saves, the weights and the batch's inputs; kernels' transient workspaces (conv3d unfolds a layer's input for one
chunk) and the baseline come on top. The rows of every budgeted run are compared with the unbudgeted one: the
accuracies, and the largest difference of any value.

Usage: ``python benchmarks/bench_memory.py [--n 16] [--batch-size 16] [--steps 2] [--budgets 256M,512M] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import warnings

SIDE = 64


def child(n: int, batch_size: int, budget: str | None, threads: int, steps: int) -> dict[str, object]:
    """Evaluate in this process and return its figures (called in the child)."""
    import numpy as np
    import torch

    from medrobust import models
    from medrobust.data.base import ArrayDataset, DatasetInfo
    from medrobust.evaluation import RobustnessCheckWarning, ThreatSpec, evaluate
    from medrobust.evaluation.memory import parse_size
    from medrobust.tasks import ClassificationTask

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=8, spatial_dims=3).eval()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, 1, SIDE, SIDE, SIDE)).astype(np.float32)
    data = ArrayDataset(x, np.arange(n) % 2, DatasetInfo("noise", "binary", 1, (SIDE,) * 3, 2, ("a", "b"), "test"))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessCheckWarning)
        results = evaluate(model, data, ClassificationTask(kind="binary", num_classes=2),
                           [ThreatSpec.attack("pgd", norm="linf", eps=[0, 8 / 255], steps=steps)],
                           batch_size=batch_size, probe_n=2, progress=False,
                           max_memory=None if budget is None else parse_size(budget))  # fmt: skip
    return {
        "budget": budget or "none",
        "chunk": results.config.get("memory", {}).get("chunk", batch_size),
        "baseline_mib": baseline / 1024,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": time.perf_counter() - start,
        "rows": [{"metric": r["metric"], "value": r["value"]} for r in results.rows],
    }


def spawn(args: argparse.Namespace, budget: str | None) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", budget or "none", "--n", str(args.n), "--batch-size",
               str(args.batch_size), "--threads", str(args.threads), "--steps", str(args.steps)]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="volumes evaluated")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="PGD steps")
    parser.add_argument("--budgets", default="256M,512M", help="comma-separated --max-memory values")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        budget = None if args.child == "none" else args.child
        print(json.dumps(child(args.n, args.batch_size, budget, args.threads, args.steps)))
        return
    print(f"small_cnn (width 8) 3D at {SIDE}³, {args.n} volumes, batch {args.batch_size}, PGD {args.steps} steps, "
          f"{args.threads} thread(s), {os.cpu_count()} CPU cores")  # fmt: skip
    print(f"{'--max-memory':>12} {'chunk':>5} {'baseline MiB':>12} {'peak MiB':>9} {'seconds':>8} "
          f"{'accuracies':>10} {'max |Δ value|':>13}")  # fmt: skip
    reference: dict[str, object] | None = None
    for budget in [None, *args.budgets.split(",")]:
        r = spawn(args, budget)
        reference = r if reference is None else reference
        same, delta = compare_rows(reference, r)
        print(f"{r['budget']:>12} {r['chunk']:>5} {r['baseline_mib']:>12.0f} {r['peak_mib']:>9.0f} "
              f"{r['seconds']:>8.1f} {'same' if same else 'DIFFER':>10} {delta:>13.2g}", flush=True)  # fmt: skip


def compare_rows(reference: dict[str, object], other: dict[str, object]) -> tuple[bool, float]:
    """Whether the accuracy rows are equal, and the largest absolute difference of any finite row value."""
    pairs = list(zip(reference["rows"], other["rows"]))  # type: ignore[call-overload]
    same = all(a["value"] == b["value"] for a, b in pairs if a["metric"] == "accuracy")
    deltas = [abs(a["value"] - b["value"]) for a, b in pairs if math.isfinite(a["value"]) and math.isfinite(b["value"])]
    return same, max(deltas, default=0.0)


if __name__ == "__main__":
    main()
