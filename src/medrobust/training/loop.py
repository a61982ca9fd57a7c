"""The training loop: :func:`fit` with checkpoint/resume, history, progress bar and mixed precision.

The loop knows nothing about particular methods: a :class:`~medrobust.methods.TrainingMethod` computes each
batch's loss (``training_step``) and updates its own state at epoch end (``on_epoch_end``).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from medrobust import faults
from medrobust.data.base import ArrayDataset
from medrobust.distributed import (
    PerSampleState,
    World,
    broadcast_module,
    gather_objects,
    merge_method_state,
    shard,
    sync_gradients,
    world,
)
from medrobust.errors import ConfigError, MedrobustError
from medrobust.methods.base import Batch, EpochContext, StepContext, TrainingMethod
from medrobust.runtime import eval_mode, model_device
from medrobust.tasks.base import Task
from medrobust.training.checkpoint import (
    CHECKPOINT,
    atomic_write_text,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from medrobust.training.optim import Scheduler

HISTORY = "history.jsonl"
Callback = Callable[[dict[str, Any]], None]


class TrainingDiverged(MedrobustError):
    """The loss became NaN or infinite."""


@dataclass
class History:
    """One record per finished epoch (also written to ``history.jsonl``)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def last(self) -> dict[str, Any]:
        """The latest epoch's record."""
        return self.records[-1] if self.records else {}


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --set train.device=cpu")
    return device


def batches(dataset: ArrayDataset, batch_size: int, generator: torch.Generator | None) -> Iterator[Batch]:
    """Shuffled (when a generator is given) batches; a trailing batch of one sample is dropped (BatchNorm)."""
    for idx in global_batches(len(dataset), batch_size, generator):
        x, y, i = dataset.batch(idx)
        yield Batch(x, y, i)


def global_batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
    """The dataset indices of each batch of one epoch over ``n`` samples (see :func:`batches`); under ``torchrun``
    every rank draws the same ones and trains on its :func:`~medrobust.distributed.shard` of each."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if generator is not None and len(idx) < 2 and n > 1:
            continue
        yield idx


@torch.no_grad()
def predict(
    model: nn.Module, dataset: ArrayDataset, *, batch_size: int = 256, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """Model outputs and targets over a whole split (eval mode, restored afterwards).

    Shape:
        Returns ``outputs (N, K)`` and ``targets (N, ...)`` on the CPU.
    """
    device = device or model_device(model)
    outs, ys = [], []
    with eval_mode(model):
        for b in batches(dataset, batch_size, None):
            outs.append(model(b.x.to(device)).float().cpu())
            ys.append(b.target)
    return torch.cat(outs), torch.cat(ys)


def fit(
    model: nn.Module,
    method: TrainingMethod,
    train: ArrayDataset,
    val: ArrayDataset | None,
    *,
    task: Task,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler | None = None,
    epochs: int,
    batch_size: int = 64,
    eval_batch_size: int = 256,
    run_dir: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    amp: bool = True,
    amp_attack: bool = False,
    channels_last: bool = False,
    compile_model: bool = False,
    sync_bn: bool = False,
    grad_clip: float = 0.0,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    extra_state: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` with ``method`` for ``epochs`` epochs.

    Each epoch: shuffle with a seeded generator, one ``method.training_step`` per batch, ``method.on_epoch_end``,
    validation metrics, then an atomic checkpoint (model, optimizer, scheduler, method state, RNG states, epoch,
    history) and ``history.jsonl``. With ``resume=True`` and a checkpoint in ``run_dir``, training continues from
    the next epoch and gives bit-identical weights to an uninterrupted run on the same machine.

    Under ``torchrun`` (docs/distributed.md) every rank draws the same permutation and trains on its slice of each
    global batch of ``batch_size`` samples; gradients are averaged over the global batch, per-sample method state
    is merged across ranks before ``on_epoch_end``, and rank 0 alone writes the checkpoint, history and progress.

    Args:
        model: network taking [0, 1] inputs (moved to ``device``).
        method: the training method.
        train: training split; ``val``: validation split or None.
        task: loss/predicate/metrics.
        optimizer: over ``model``'s parameters; ``scheduler``: stepped once per epoch.
        epochs: total epochs (including already finished ones when resuming).
        run_dir: folder for ``checkpoint.pt`` and ``history.jsonl`` (None: keep nothing on disk).
        seed: seeds the shuffling and the method's generator.
        amp: bfloat16 autocast on CUDA (ignored on CPU) around the update's forward and backward; attacks and IMA's
            boundary search run in fp32 (:meth:`~medrobust.methods.StepContext.attack_precision`).
        amp_attack: also run the attacks (not IMA's or AMAT's, always fp32) under that autocast.
        channels_last: model and input batches in channels-last memory layout (faster convolutions on GPUs).
        compile_model: train through ``torch.compile(model)`` (the checkpoint holds ``model``'s own weights).
        sync_bn: under ``torchrun`` on GPUs, BatchNorm statistics over the global batch (:func:`sync_batchnorm`).
        grad_clip: rescale the gradient to this global L2 norm when it is larger, before each optimizer step
            (``torch.nn.utils.clip_grad_norm_``; nnU-Net and AMAT use 12); 0 turns it off.
        callbacks: called with each epoch record.
        extra_state: stored in the checkpoint as is (e.g. the resolved config).

    Returns:
        The :class:`History` of all epochs.
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be ≥ 1, got {epochs} and {batch_size}")
    if not grad_clip >= 0:
        raise ConfigError(f"train.grad_clip must be ≥ 0 (0: off), got {grad_clip}")
    device = torch.device(device)
    model.to(device)
    layout = memory_format(len(train.info.spatial)) if channels_last else None
    if layout is not None:
        model.to(memory_format=layout)  # type: ignore[call-overload]  # the stub lacks memory_format
    w = world()
    gens = {
        "shuffle": torch.Generator().manual_seed(seed),  # the same on every rank: one global permutation
        "method": torch.Generator(device=device).manual_seed(seed + 1 + 1_000_003 * w.rank),  # own draws per rank
    }
    torch.manual_seed(seed)
    method.setup(model, len(train), task)
    if sync_bn:
        sync_batchnorm(model, method, device)
    history = History()
    ckpt_path = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    start = 1
    if ckpt_path is not None:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        if ckpt_path.exists():
            if not resume:
                raise ConfigError(
                    f"{ckpt_path.parent} already holds a checkpoint; "
                    "pass --resume to continue it or choose another --out"
                )
            start = _restore(load_checkpoint(ckpt_path), model, optimizer, scheduler, method, gens, history)
            if w.main:  # a run killed between its checkpoint and its history: the checkpoint's history is whole
                _write_history(ckpt_path.parent, history)
    broadcast_module(model)
    progress = progress and w.main
    autocast = autocast_factory(device, amp)
    stepped = compiled(model) if compile_model else model  # shares model's parameters and buffers
    loader = BatchLoader(train, device, layout)
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        ctx = StepContext(task, epoch, 0, gens["method"], device, autocast, len(train), seed, amp_attack)
        step = Stepper(optimizer, model, grad_clip)
        record = _train_epoch(stepped, method, loader, step, ctx, gens["shuffle"], batch_size, progress, epochs)
        merge_method_state(method)
        record.update(method.on_epoch_end(EpochContext(epoch, str(run_dir) if run_dir and w.main else None, task)))
        record["lr"] = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        record["train_seconds"] = time.perf_counter() - t0
        if val is not None:
            outputs, targets = predict(model, val, batch_size=eval_batch_size, device=device)
            record["val_loss"] = float(task.loss(outputs, targets).mean())
            record.update({f"val_{k}": v for k, v in task.metrics(outputs, targets).items()})
        record = {"epoch": epoch, **record, "seconds": time.perf_counter() - t0}
        history.records.append(record)
        faults.hit("train.epoch")
        if ckpt_path is not None:
            state = _state(model, optimizer, scheduler, method, gens, epoch, history, extra_state, w)
            if w.main:
                save_checkpoint(ckpt_path, state)
                _write_history(ckpt_path.parent, history)
        for cb in callbacks if w.main else ():
            cb(record)
    return history


def _write_history(folder: Path, history: History) -> None:
    """``folder/history.jsonl``: one JSON record per finished epoch, written atomically."""
    atomic_write_text(folder / HISTORY, "".join(json.dumps(r) + "\n" for r in history.records))


def sync_batchnorm(model: nn.Module, method: TrainingMethod, device: torch.device) -> None:
    """Turn ``model``'s BatchNorm layers into ``SyncBatchNorm`` in place under ``torchrun`` (a no-op in one
    process); the parameters stay the same objects, so an optimizer built before keeps working.

    Raises:
        ConfigError: on the CPU, or for a method with per-sample state once set up (IMA, AMAT run the adversarial
            forward pass only on the samples that need it, so the ranks' ``SyncBatchNorm`` calls would not match).
    """
    if device.type != "cuda":
        raise ConfigError(
            "train.sync_bn needs CUDA GPUs (NCCL); on the CPU each rank keeps its own BatchNorm statistics"
        )
    if any(isinstance(v, PerSampleState) for v in vars(method).values()):
        raise ConfigError(
            "train.sync_bn cannot be used with per-sample-margin methods (IMA, AMAT): their adversarial forward "
            "calls differ between ranks; use GroupNorm (model.options.norm=group) or per-rank statistics"
        )
    if world().parallel and nn.SyncBatchNorm.convert_sync_batchnorm(model) is not model:
        raise ConfigError("train.sync_bn cannot convert a model that is a single BatchNorm layer")


@dataclass
class BatchLoader:
    """Gathers training batches from a dataset onto the training device: on CUDA through pinned (page-locked)
    memory with non-blocking copies; in ``layout`` (e.g. channels-last) when given."""

    data: ArrayDataset
    device: torch.device
    layout: torch.memory_format | None = None

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, idx: Tensor) -> Batch:
        """The samples ``idx`` ``(B,)`` as a :class:`Batch` on the device; ``x`` ``(B, C, *spatial)``."""
        x, y, i = self.data.batch(idx)
        cuda = self.device.type == "cuda"
        if cuda:
            x, y = x.pin_memory(), y.pin_memory()
        x = x.to(self.device, non_blocking=cuda)
        if self.layout is not None:
            x = x.contiguous(memory_format=self.layout)
        return Batch(x, y.to(self.device, non_blocking=cuda), i.to(self.device, non_blocking=cuda))


@dataclass
class Stepper:
    """The optimizer step of the loop, after clipping the gradient's global L2 norm to ``grad_clip`` (0: off)."""

    optimizer: torch.optim.Optimizer
    model: nn.Module
    grad_clip: float = 0.0

    def __call__(self) -> None:
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()


def _train_epoch(
    model: nn.Module,
    method: TrainingMethod,
    data: BatchLoader,
    step_optimizer: Stepper,
    ctx: StepContext,
    shuffle: torch.Generator,
    batch_size: int,
    progress: bool,
    epochs: int,
) -> dict[str, Any]:
    model.train()
    total_loss, correct, seen, judged = 0.0, 0, 0, 0
    logs: dict[str, float] = {}
    n_batches = math.ceil(len(data) / batch_size)
    w = world()
    bar = tqdm(
        global_batches(len(data), batch_size, shuffle),
        total=n_batches,
        desc=f"epoch {ctx.epoch}/{epochs}",
        leave=False,
        disable=not progress or None,
        dynamic_ncols=True,
    )
    for step, global_idx in enumerate(bar):
        step_optimizer.optimizer.zero_grad(set_to_none=True)
        idx = shard(global_idx, w)
        if len(idx) == 0:  # fewer samples than ranks in this batch: contribute a zero gradient
            sync_gradients(model.parameters(), 0, len(global_idx))
            step_optimizer()
            continue
        batch = data.batch(idx)
        ctx.step = step
        with ctx.autocast():
            out = method.training_step(model, batch, ctx)
        loss = float(out.loss.detach())
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss} at epoch {ctx.epoch}, step {step}; lower the learning rate or check the data"
            )
        out.backward()
        sync_gradients(model.parameters(), len(idx), len(global_idx))
        step_optimizer()
        faults.hit("train.batch")
        b = len(batch.x)
        total_loss += loss * b
        seen += b
        if out.output is not None:
            correct += int(ctx.task.correct(out.output, batch.target).sum())
            judged += b
        for k, v in out.logs.items():
            logs[k] = logs.get(k, 0.0) + v * b
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
    bar.close()
    total_loss, correct, seen, judged, logs = _sum_over_ranks(total_loss, correct, seen, judged, logs, w)
    record: dict[str, Any] = {"train_loss": total_loss / max(seen, 1)}
    if judged:  # methods that return no clean outputs get no training accuracy
        record["train_accuracy"] = correct / judged
    record.update({k: v / max(seen, 1) for k, v in logs.items()})
    return record


def _sum_over_ranks(
    loss: float, correct: int, seen: int, judged: int, logs: dict[str, float], w: World
) -> tuple[float, int, int, int, dict[str, float]]:
    """The epoch's sample-weighted sums over all ranks (unchanged in one process)."""
    if not w.parallel:
        return loss, correct, seen, judged, logs
    parts = gather_objects((loss, correct, seen, judged, logs))
    merged: dict[str, float] = {}
    for p in parts:
        for k, v in p[4].items():
            merged[k] = merged.get(k, 0.0) + v
    return (
        sum(p[0] for p in parts),
        sum(p[1] for p in parts),
        sum(p[2] for p in parts),
        sum(p[3] for p in parts),
        merged,
    )


def compiled(model: nn.Module) -> nn.Module:
    """``torch.compile(model)``: a module that runs ``model``'s compiled graph on ``model``'s own parameters
    (compiled lazily, at the first forward, once per train/eval mode)."""
    out = torch.compile(model)
    if not isinstance(out, nn.Module):  # torch.compile of a module returns an OptimizedModule
        raise TypeError(f"torch.compile returned {type(out).__name__}, not a module")
    return out


def memory_format(spatial_dims: int) -> torch.memory_format:
    """The channels-last layout of images with ``spatial_dims`` spatial axes (2: ``NHWC``, 3: ``NDHWC``)."""
    if spatial_dims not in (2, 3):
        raise ConfigError(f"train.channels_last needs 2-D or 3-D images, not {spatial_dims}-D")
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def autocast_factory(device: torch.device, amp: bool) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """The mixed-precision context of a training step: bfloat16 autocast on CUDA with ``amp``, else none."""
    if amp and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler | None,
    method: TrainingMethod,
    gens: dict[str, torch.Generator],
    epoch: int,
    history: History,
    extra: dict[str, Any] | None,
    w: World,
) -> dict[str, Any]:
    """The checkpoint; under ``torchrun`` it also holds every rank's RNG states (``rng_ranks``), gathered from all
    ranks (so every rank must call this), for a bit-identical ``--resume`` with the same number of processes."""
    ranks = gather_objects(rng_state(gens)) if w.parallel else None
    return {
        "format": "medrobust.checkpoint/1",
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "method": method.state_dict(),
        "rng": rng_state(gens) if ranks is None else ranks[0],
        **({"rng_ranks": ranks} if ranks is not None else {}),
        "history": history.records,
        **(extra or {}),
    }


def _restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler | None,
    method: TrainingMethod,
    gens: dict[str, torch.Generator],
    history: History,
) -> int:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    method.load_state_dict(state.get("method", {}))
    w = world()
    ranks = state.get("rng_ranks")
    # the same world size: each rank its own states; else rank 0's (a new world size is not bit-reproducible)
    own = ranks[w.rank] if isinstance(ranks, list) and len(ranks) == w.size else None
    restore_rng_state(own if own is not None else state["rng"], gens)
    if own is None and w.rank > 0:  # another world size: derive this rank's own draws from rank 0's state
        gens["method"].manual_seed(int(torch.randint(2**62, (1,), generator=gens["method"])) + w.rank)
    history.records[:] = list(state.get("history", []))
    return int(state["epoch"]) + 1
