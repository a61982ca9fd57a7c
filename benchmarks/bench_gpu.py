"""Training throughput on a GPU: images/s of standard, SAT-10 and IMA-20 on ResNet-18, at 64² and 224².

Each method's training step (``method.training_step``, backward, optimizer step, as in
:func:`medrobust.training.fit`: with ``--amp`` the bfloat16 autocast covers the update, the attacks run in fp32
unless ``--amp-attack``) is timed on a fixed random batch, and compared with bare forward + backward + step of the
same model: ``× bare = bare images/s ÷ method images/s`` (SAT-k costs about k + 1 bare steps, IMA-20 more). The GPU
is synchronised around every timing; the peak GPU memory of each step (``torch.cuda.max_memory_allocated``) is
reported beside it. ``--json PATH`` also writes the settings and rows as JSON.
A second table gives each IMA-20 variant's step time over SAT-20's with both attacks in train mode (issue 12's
IMA / SAT ratio).

Usage::

    python benchmarks/bench_gpu.py                                   # CUDA, batch 128 at 64², 64 at 224²
    python benchmarks/bench_gpu.py --channels-last --compile --amp   # the optional GPU settings
    python benchmarks/bench_gpu.py --device cpu --quick              # smoke check on the CPU (tiny batches)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from medrobust import models
from medrobust.methods import METHODS, Batch, StepContext
from medrobust.reporting.tables import Table
from medrobust.tasks.classification import ClassificationTask
from medrobust.training.checkpoint import atomic_write_text
from medrobust.training.loop import autocast_factory, compiled, resolve_device

TASK = ClassificationTask(kind="multiclass", num_classes=10)
IMA_20 = {"steps": 20, "e_max": 8 / 255, "delta": 8 / 255 / 10}
METHOD_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "standard": ("standard", {}),
    "SAT-10": ("pgd_at", {"eps": 8 / 255, "steps": 10}),
    "SAT-20, train-mode attack": ("pgd_at", {"eps": 8 / 255, "steps": 20, "train_mode": True}),
    "IMA-20": ("ima", IMA_20),
    "IMA-20, subset search": ("ima", {**IMA_20, "search_batch": "subset"}),
    "IMA-20, Illinois search": ("ima", {**IMA_20, "refine": "illinois"}),
    "IMA-20, Illinois, subset": ("ima", {**IMA_20, "refine": "illinois", "search_batch": "subset"}),
}
SAT_SAME_STEPS = "SAT-20, train-mode attack"


def build(size: int, device: torch.device, channels_last: bool, compile_model: bool) -> nn.Module:
    """ResNet-18 (CIFAR stem at 64², ImageNet stem at 224²) for 3-channel inputs and 10 classes."""
    torch.manual_seed(0)
    model = models.create("resnet18", in_channels=3, num_outputs=10, stem="cifar" if size <= 64 else "imagenet")
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stub lacks it
    return compiled(model) if compile_model else model


def timed(fn: Callable[[], None], device: torch.device, warmup: int, rounds: int) -> tuple[float, float]:
    """Best seconds of ``rounds`` calls after ``warmup`` calls, and the peak GPU memory of one call (GiB; 0 on the
    CPU)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    best = float("inf")
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return best, peak


def bare_step(model: nn.Module, opt: torch.optim.Optimizer, batch: Batch, autocast: Any) -> Callable[[], None]:
    def run() -> None:
        with autocast():
            loss = TASK.loss(model(batch.x), batch.target).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return run


def method_step(
    name: str,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    batch: Batch,
    device: torch.device,
    autocast: Any,
    amp_attack: bool,
) -> Callable[[], None]:
    registered, options = METHOD_OPTIONS[name]
    method = METHODS.create(registered, **options)
    n = len(batch.x)
    method.setup(model, n, TASK)
    ctx = StepContext(TASK, 1, 0, torch.Generator(device=device).manual_seed(1), device, autocast, n, 0, amp_attack)

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = method.training_step(model, batch, ctx)
        out.backward()
        opt.step()

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (smoke check)")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    p.add_argument("--batch", type=int, nargs="+", help="batch size per image size (default 128 at 64², 64 at 224²)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast of the update on CUDA, as fit(amp=True)")
    p.add_argument("--amp-attack", action="store_true", help="the attacks under that autocast too")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--quick", action="store_true", help="batch 2, 1 round: a smoke check")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (CPU smoke check)")
    p.add_argument("--json", help="also write the settings and rows to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    default = [2] * len(args.sizes) if args.quick else [128 if s <= 64 else 64 for s in args.sizes]
    sizes = list(zip(args.sizes, args.batch or default, strict=True))
    rounds, warmup = (1, 1) if args.quick else (args.rounds, 2)
    autocast = autocast_factory(device, args.amp)
    rows: list[dict[str, Any]] = []
    for size, bs in sizes:
        model = build(size, device, args.channels_last, args.compile)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(bs, 3, size, size, generator=g)
        x = (x.pin_memory() if device.type == "cuda" else x).to(device, non_blocking=True)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        batch = Batch(x, torch.randint(0, 10, (bs,), generator=g).to(device), torch.arange(bs, device=device))
        steps = {"bare forward + backward": bare_step(model, opt, batch, autocast)}
        for name in METHOD_OPTIONS:
            steps[name] = method_step(name, model, opt, batch, device, autocast, args.amp_attack)
        for name, step in steps.items():
            seconds, peak = timed(step, device, warmup, rounds)
            rows.append({"size": size, "step": name, "batch": bs, "images_per_s": bs / seconds, "peak_gib": peak})
    bare = {r["size"]: r["images_per_s"] for r in rows if r["step"] == "bare forward + backward"}
    for r in rows:
        r["x_bare"] = bare[r["size"]] / r["images_per_s"]
    settings = {"device": str(device), "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "amp": args.amp, "amp_attack": args.amp_attack, "channels_last": args.channels_last,
                "compile": args.compile, "torch": torch.__version__}  # fmt: skip
    print("ResNet-18 training throughput: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    table = [[f"{r['size']}²", r["step"], r["batch"], r["images_per_s"], r["x_bare"], r["peak_gib"]] for r in rows]
    print(Table.of(["size", "step", "batch", "images/s", "× bare", "peak GPU GiB"], table).to_markdown())
    if args.json:
        atomic_write_text(args.json, json.dumps({**settings, "rows": rows}, indent=2))
    speed = {(r["size"], r["step"]): r["images_per_s"] for r in rows}
    ratios = [[f"{r['size']}²", r["step"], speed[r["size"], SAT_SAME_STEPS] / r["images_per_s"]]
              for r in rows if "IMA" in r["step"]]  # fmt: skip
    print()
    print(Table.of(["size", "IMA variant", f"step time ÷ {SAT_SAME_STEPS}"], ratios).to_markdown())


if __name__ == "__main__":
    main()
