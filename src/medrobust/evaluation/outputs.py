"""Model outputs under one threat, for protocols that need the outputs themselves (ROC curves, fusion) rather than
the tidy rows of :func:`~medrobust.evaluation.runner.evaluate`, and the binary metrics those protocols report.

Example:
    >>> import torch
    >>> from medrobust.data.base import ArrayDataset, DatasetInfo
    >>> from medrobust.evaluation.threats import ThreatSpec
    >>> info = DatasetInfo("toy", "binary", 1, (4, 4), 2, ("no", "yes"), "test")
    >>> data = ArrayDataset(torch.rand(6, 1, 4, 4).numpy(), torch.tensor([0, 1, 0, 1, 1, 0]).numpy(), info)
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    >>> outputs, targets = threat_outputs(model, data, data.task(), ThreatSpec.attack("fgsm", norm="linf",
    ...                                                                               eps=[0.01, 0.1]))
    >>> len(outputs), tuple(outputs[0].shape), tuple(targets.shape)
    (2, (6, 1), (6,))
    >>> sorted(binary_metrics(data.task(), outputs[0], targets))
    ['accuracy', 'auc', 'sensitivity', 'specificity']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from medrobust.evaluation.passes import spec_outputs
from medrobust.evaluation.results import json_safe
from medrobust.evaluation.runner import _batches, _generator
from medrobust.evaluation.threats import ThreatSpec
from medrobust.runtime import eval_mode, model_device
from medrobust.tasks.base import Task

BINARY_METRICS = ("accuracy", "auc", "sensitivity", "specificity")
RocCurve = tuple[str, Tensor, Tensor]  # ROC inputs: label, targets (N,) 0/1 of the positive class, scores (N,)


def threat_outputs(
    model: nn.Module,
    data: Any,
    task: Task,
    spec: ThreatSpec,
    *,
    seed: int = 0,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    n: int | None = None,
    reuse: bool = False,
    progress: bool = False,
) -> tuple[list[Tensor], Tensor]:
    """Outputs of ``model`` (eval mode, flags restored) under ``spec`` at each of its levels, and the targets.

    Args:
        model: maps inputs in [0, 1] to outputs.
        data: a dataset or an iterable of ``(x, target, ...)`` batches, as for :func:`evaluate`.
        task: loss and predicate of the attack.
        spec: the threat (clean: one output tensor).
        seed: seeds the attack's random starts or the noise.
        batch_size: batch size for datasets.
        device: where to run; defaults to the model's device.
        n: a seeded random subset of ``n`` samples (datasets only).
        reuse: attack the levels as one sweep that keeps samples broken at a smaller ε (``evaluate``'s default for
            classification); ``False`` attacks every level independently from the clean input.
        progress: show a progress bar.

    Returns:
        ``(outputs, targets)``: one CPU tensor ``(N, *)`` per level, and the targets ``(N, *)``.
    """
    dev = torch.device(device) if device is not None else model_device(model)
    batches = list(_batches(data, batch_size, n, seed))
    targets = torch.cat([y for _, y in batches])
    passes = len(spec.levels) if spec.kind == "noise" else 1
    with eval_mode(model.to(dev)), tqdm(total=passes * len(batches), disable=not progress or None, leave=False) as bar:
        outputs = spec_outputs(model, task, spec, batches, dev, _generator(seed, 0, dev), bar, reuse=reuse)
    return outputs, targets


def binary_metrics(task: Task, outputs: Tensor, targets: Tensor) -> dict[str, float | None]:
    """Accuracy, ROC AUC, sensitivity and specificity (threshold 0.5) from ``task.metrics``; NaN written as None.

    Shape:
        ``outputs (N, K)`` (``(N, 1)`` logits for a one-logit model), ``targets (N,)``.
    """
    values = task.metrics(outputs, targets)
    return json_safe({k: float(values[k]) for k in BINARY_METRICS})
