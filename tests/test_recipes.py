"""Every recipe in recipes/ loads, names known components and builds its method, model, optimiser and schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from medrobust import models
from medrobust.config import ExperimentConfig, OptimConfig, load_config
from medrobust.errors import ConfigError
from medrobust.methods import METHODS
from medrobust.methods.adaptive_margin import IMA
from medrobust.training.optim import build_optimizer, build_scheduler
from medrobust.training.runs import RUN_OPTIONS, check_names

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes() -> None:
    assert len(RECIPES) >= 10


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds(path: Path) -> None:
    cfg = load_config(path)
    check_names(cfg)
    options = {k: v for k, v in cfg.method.options.items() if k not in RUN_OPTIONS}
    assert METHODS.create(cfg.method.name, **options) is not None
    spatial: dict[str, Any] = {"spatial_dims": 3} if "3d" in path.stem or cfg.model.name == "mrnet" else {}
    if cfg.model.name.startswith("monai:"):
        pytest.importorskip("monai")
    if models.takes_image_size(cfg.model.name):  # MONAI's: built (and checked) for the recipe's image size
        spatial["image_size"] = [cfg.data.options["size"]] * spatial.get("spatial_dims", 2)
    model = models.create(cfg.model.name, in_channels=1, num_outputs=2, **{**spatial, **cfg.model.options})
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    build_scheduler(optimizer, cfg.optim, cfg.train.epochs)


def lrs(cfg: OptimConfig, epochs: int) -> list[float]:
    optimizer = build_optimizer(torch.nn.Linear(1, 1).parameters(), cfg)
    scheduler = build_scheduler(optimizer, cfg, epochs)
    assert scheduler is not None
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_official_ima_recipes() -> None:
    path = {p.stem: p for p in RECIPES}
    cfg = load_config(path["pathmnist-ima"])
    ima = METHODS.create("ima", **cfg.method.options)
    assert isinstance(ima, IMA)
    assert (ima.attack.loss, ima.schedule.delta, ima.schedule.e_max, ima.search.batch) == ("margin", 0.03, 3.0, "full")
    assert (cfg.optim.nesterov, cfg.optim.weight_decay, cfg.train.batch_size, cfg.train.epochs) == (
        True,
        1e-3,
        128,
        150,
    )
    rates = lrs(cfg.optim, cfg.train.epochs)
    spans = {0: 0.1, 58: 0.1, 59: 0.09, 74: 0.09, 75: 0.009, 88: 0.009, 89: 0.03, 118: 0.03, 119: 0.009, 149: 0.009}
    assert all(rates[e] == pytest.approx(v) for e, v in spans.items())
    covid = load_config(path["covid-ct-ima"])
    rates = lrs(covid.optim, covid.train.epochs)
    assert [rates[e] for e in (38, 39, 58, 59, 78, 79, 99)] == pytest.approx(
        [0.1, 0.03, 0.03, 0.01, 0.01, 0.003, 0.003]
    )
    assert (covid.method.options["e_max"], covid.method.options["delta"], covid.optim.weight_decay) == (12.0, 2.0, 1e-3)


def test_piecewise_schedule_resumes_and_rejects_bad_values() -> None:
    cfg = OptimConfig(name="sgd", lr=1.0, schedule="piecewise", milestones=[2, 4], lr_values=[0.5, 2.0])
    optimizer = build_optimizer(torch.nn.Linear(1, 1).parameters(), cfg)
    scheduler = build_scheduler(optimizer, cfg, 6)
    assert scheduler is not None
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    again = build_scheduler(build_optimizer(torch.nn.Linear(1, 1).parameters(), cfg), cfg, 6)
    assert again is not None
    again.load_state_dict(state)
    assert again.get_last_lr() == pytest.approx([0.5]) and lrs(cfg, 6) == pytest.approx([1, 1, 0.5, 0.5, 2, 2])
    for bad in ({"milestones": [2], "lr_values": [0.5, 2.0]}, {"milestones": [4, 2], "lr_values": [0.5, 2.0]}):
        with pytest.raises(ConfigError, match="piecewise"):
            build_scheduler(optimizer, ExperimentConfig.from_dict({"optim": {**vars(cfg), **bad}}).optim, 6)


def test_official_amat_msd_recipes() -> None:
    path = {p.stem: p for p in RECIPES}
    deltas = {"heart": 0.5, "hippocampus": 0.25, "prostate": 1.0}  # official 5 (ours) / 2.5 / 10 z units ÷ 10
    for key, delta in deltas.items():
        cfg = load_config(path[f"msd-{key}-amat"])
        assert cfg.data.name == f"msd-{key}" and cfg.data.options == {"fold": 1, "z_range": 5.0}
        amat = METHODS.create("amat", **cfg.method.options)
        assert isinstance(amat, IMA) and amat.schedule.delta == delta and amat.schedule.e_max == float("inf")
        assert (amat.attack.alpha, amat.attack.steps, amat.attack.start_radius, amat.search.stop) == (
            4,
            20,
            "lagged",
            "final",
        )
        assert (amat.adv_samples, amat.clean_predicate, amat.beta) == ("correct", "any", 0.5)
        assert (cfg.optim.momentum, cfg.optim.nesterov, cfg.optim.weight_decay, cfg.train.epochs) == (
            0.99,
            True,
            3e-5,
            50,
        )
        rates = lrs(cfg.optim, cfg.train.epochs)
        assert [rates[e] for e in (0, 1, 25, 49)] == pytest.approx([0.01 * (1 - e / 50) ** 0.9 for e in (0, 1, 25, 49)])


def test_poly_schedule_resumes_and_rejects_bad_power() -> None:
    cfg = OptimConfig(name="sgd", lr=0.5, schedule="poly", power=2.0)
    assert lrs(cfg, 4) == pytest.approx([0.5, 0.5 * 0.75**2, 0.5 * 0.5**2, 0.5 * 0.25**2])
    optimizer = build_optimizer(torch.nn.Linear(1, 1).parameters(), cfg)
    scheduler = build_scheduler(optimizer, cfg, 4)
    assert scheduler is not None
    optimizer.step()
    scheduler.step()
    again = build_scheduler(build_optimizer(torch.nn.Linear(1, 1).parameters(), cfg), cfg, 4)
    assert again is not None
    again.load_state_dict(scheduler.state_dict())
    assert again.get_last_lr() == pytest.approx([0.5 * 0.75**2])
    with pytest.raises(ConfigError, match="poly needs power > 0"):
        build_scheduler(optimizer, OptimConfig(name="sgd", schedule="poly", power=0.0), 4)
