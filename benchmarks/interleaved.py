"""Shared harness of the epoch-time benchmarks: contenders trained side by side, interleaved batch by batch, so
that load changes on a shared machine hit every method alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from medrobust.data.base import ArrayDataset
from medrobust.methods import Batch, EpochContext, StepContext, TrainingMethod
from medrobust.tasks.base import Task
from medrobust.training.loop import batches

CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


@dataclass
class Contender:
    """One method with its own model copy, optimizer, generator, epoch times and last-epoch logs."""

    key: str
    label: str
    method: TrainingMethod
    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(1))
    seconds: list[float] = field(default_factory=list)
    logs: dict[str, float] = field(default_factory=dict)


def train_step(c: Contender, batch: Batch, task: Task, epoch: int, step: int, clock: Callable[[], float]) -> float:
    """One optimisation step as :func:`medrobust.training.fit` runs it; returns its time in seconds."""
    t0 = clock()
    c.model.train()
    c.optimizer.zero_grad(set_to_none=True)
    out = c.method.training_step(c.model, batch, StepContext(task, epoch, step, c.generator, torch.device("cpu")))
    out.backward()
    c.optimizer.step()
    seconds = clock() - t0
    for k, v in out.logs.items():
        c.logs[k] = c.logs.get(k, 0.0) + v * len(batch.x)
    return seconds


def run_epoch(
    everyone: list[Contender], train: ArrayDataset, task: Task, epoch: int, bs: int, clock: Callable[[], float]
) -> None:
    """One epoch of every contender, interleaved batch by batch; appends each one's epoch time (steps and
    ``on_epoch_end``) and leaves its sample-weighted mean logs in ``logs``."""
    spent = dict.fromkeys((c.key for c in everyone), 0.0)
    for c in everyone:
        c.logs = {}
    for step, batch in enumerate(batches(train, bs, torch.Generator().manual_seed(epoch))):
        for c in everyone:
            spent[c.key] += train_step(c, batch, task, epoch, step, clock)
    for c in everyone:
        t0 = clock()
        c.method.on_epoch_end(EpochContext(epoch, None, task))
        c.seconds.append(spent[c.key] + clock() - t0)
        c.logs = {k: v / len(train) for k, v in c.logs.items()}
