"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules (none, multistep, cosine) from config."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from medrobust.config import OptimConfig
from medrobust.errors import ConfigError
from medrobust.registry import unknown_name_message

Scheduler = torch.optim.lr_scheduler.LRScheduler


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
    """Per-epoch schedule: ``multistep`` (×gamma at each milestone epoch), ``cosine`` (to 0 over ``epochs``)."""
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "multistep":
        if not cfg.milestones or sorted(cfg.milestones) != cfg.milestones or cfg.milestones[0] <= 0:
            raise ConfigError(f"multistep needs increasing positive milestones, got {cfg.milestones}")
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    raise ConfigError(unknown_name_message("schedule", cfg.schedule, ["none", "multistep", "cosine"]))
