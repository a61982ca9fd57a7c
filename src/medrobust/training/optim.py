"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules (none, multistep, piecewise, poly, cosine) from config."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import torch
from torch import nn

from medrobust.config import OptimConfig
from medrobust.errors import ConfigError
from medrobust.registry import unknown_name_message

Scheduler = torch.optim.lr_scheduler.LRScheduler
SCHEDULES = ["none", "multistep", "piecewise", "poly", "cosine"]


def build_optimizer(params: Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.name``."""
    if cfg.lr <= 0:
        raise ConfigError(f"learning rate must be positive, got {cfg.lr}")
    if cfg.weight_decay < 0:
        raise ConfigError(f"weight_decay must be ≥ 0, got {cfg.weight_decay}")
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(unknown_name_message("optimizer", cfg.name, ["sgd", "adam", "adamw"]))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int) -> Scheduler | None:
    """Per-epoch schedule: ``multistep`` (×gamma at each milestone epoch), ``piecewise`` (``lr_values[k]`` from
    epoch ``milestones[k]`` on, 0-based; ``lr`` before the first), ``poly`` (``lr·(1 − epoch/epochs)^power``,
    nnU-Net's ``poly_lr``), ``cosine`` (to 0 over ``epochs``)."""
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "multistep":
        if not cfg.milestones or sorted(cfg.milestones) != cfg.milestones or cfg.milestones[0] <= 0:
            raise ConfigError(f"multistep needs increasing positive milestones, got {cfg.milestones}")
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.gamma)
    if cfg.schedule == "piecewise":
        ok = cfg.milestones and sorted(set(cfg.milestones)) == cfg.milestones and cfg.milestones[0] > 0
        if not ok or len(cfg.lr_values) != len(cfg.milestones) or min(cfg.lr_values) <= 0:
            raise ConfigError(
                f"piecewise needs increasing positive milestones and one positive lr_values entry for each; got "
                f"milestones {cfg.milestones} and lr_values {cfg.lr_values}"
            )
        factor = Piecewise(list(cfg.milestones), [v / cfg.lr for v in cfg.lr_values])
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if cfg.schedule == "poly":
        if not cfg.power > 0:
            raise ConfigError(f"poly needs power > 0, got {cfg.power}")
        return torch.optim.lr_scheduler.LambdaLR(optimizer, Poly(max(1, epochs), cfg.power))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    raise ConfigError(unknown_name_message("schedule", cfg.schedule, SCHEDULES))


class Piecewise:
    """The factor of the base learning rate at an epoch: 1 before ``milestones[0]``, ``factors[k]`` from
    ``milestones[k]`` on (a plain object, so that ``LambdaLR.state_dict`` saves it)."""

    def __init__(self, milestones: list[int], factors: list[float]) -> None:
        self.milestones, self.factors = milestones, factors

    def __call__(self, epoch: int) -> float:
        k = bisect.bisect_right(self.milestones, epoch)
        return 1.0 if k == 0 else self.factors[k - 1]


class Poly:
    """The factor of the base learning rate at an epoch: ``(1 − epoch/epochs)^power`` (nnU-Net's ``poly_lr``,
    ``nnunet/training/learning_rate/poly_lr.py``, with exponent 0.9), 0 from ``epochs`` on."""

    def __init__(self, epochs: int, power: float) -> None:
        self.epochs, self.power = epochs, power

    def __call__(self, epoch: int) -> float:
        return float(max(0.0, 1.0 - epoch / self.epochs) ** self.power)
