"""Run by tests/test_distributed.py, in one process or under ``torchrun`` (gloo, CPU): tiny training and evaluation
runs whose results (weights, IMA margins, evaluation rows) are saved for the test to compare."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from conftest import blobs
from medrobust import models
from medrobust.distributed import distributed, world
from medrobust.evaluation.runner import evaluate
from medrobust.evaluation.threats import ThreatSpec
from medrobust.methods import METHODS, Batch, StepContext, StepOutput, TrainingMethod
from medrobust.training.loop import fit

OPTIONS: dict[str, dict[str, Any]] = {
    "standard": {},
    "pgd_at": {"eps": 0.1, "steps": 3, "random_start": False},
    "ima": {"delta": 0.05, "e_max": 0.5, "steps": 3},
}


def kill_at(method: TrainingMethod, epoch: int, step: int) -> None:
    """Make ``method`` end the process abruptly at (epoch, step) on rank 1: a crash in the middle of an epoch."""
    inner = method.training_step

    def step_or_die(model: nn.Module, batch: Batch, ctx: StepContext) -> StepOutput:
        if (ctx.epoch, ctx.step) == (epoch, step) and world().rank == 1:
            os._exit(3)
        return inner(model, batch, ctx)

    method.training_step = step_or_die  # type: ignore[method-assign]


def train(method_name: str, epochs: int, run_dir: Path | None, *, resume: bool = False, kill: bool = False) -> dict:
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4, norm="group")
    method = METHODS.create(method_name, **OPTIONS[method_name])
    data = blobs(40, size=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if kill:
        kill_at(method, 3, 1)
    fit(model, method, data, None, task=data.task(), optimizer=opt, epochs=epochs, batch_size=10, run_dir=run_dir,
        resume=resume, seed=1, progress=False)  # fmt: skip
    return {"weights": {k: v.clone() for k, v in model.state_dict().items()}, "method": method.state_dict()}


def evaluation() -> dict[str, Any]:
    torch.manual_seed(0)
    model = models.create("small_cnn", in_channels=1, num_outputs=1, width=4, norm="group")
    data = blobs(30, size=8, split="test")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):  # full-batch steps, the same in every process: a model that is right on most samples
        opt.zero_grad()
        data.task().loss(model(data.images), data.targets).mean().backward()
        opt.step()
    model.eval()
    threats = [ThreatSpec.attack("pgd", norm="l2", eps=[0.0, 0.5], steps=3), ThreatSpec.noise("gaussian", [0.01])]
    seen = [0]
    model.register_forward_hook(lambda _m, inputs, _o: seen.__setitem__(0, seen[0] + len(inputs[0])))
    rows = evaluate(model, data, data.task(), threats, seed=0, batch_size=7, progress=False).rows
    return {"rows": rows, "samples_forwarded": seen[0]}


def main(mode: str, out: Path) -> None:
    """``mode``: ``equal`` (three methods + evaluation), ``full`` / ``killed`` / ``resume`` (IMA, 3 epochs)."""
    torch.set_num_threads(1)
    with distributed(torch.device("cpu")):
        if mode == "equal":
            result: Any = {name: train(name, 2, None) for name in OPTIONS} | {"evaluation": evaluation()}
        else:
            result = train("ima", 3, out / "run", resume=mode == "resume", kill=mode == "killed")
        if world().main:
            torch.save(result, out / f"{mode}.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
