"""Run folders: build everything from an :class:`ExperimentConfig`, train, and load a finished run back.

A run folder holds ``config.yaml`` (fully resolved), ``checkpoint.pt`` (written atomically each epoch),
``history.jsonl`` and, after training, ``metrics.json`` (clean test metrics).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medrobust import data, models
from medrobust.config import ExperimentConfig, dump_config, load_config
from medrobust.data.base import ArrayDataset, Rows
from medrobust.distributed import distributed, main_only, world
from medrobust.errors import ConfigError, DataError
from medrobust.methods import METHODS
from medrobust.methods.loss_threshold import loss_threshold, per_sample_losses
from medrobust.registry import check_options
from medrobust.runtime import num_threads, provenance
from medrobust.tasks import AnyTask, task_from_dict
from medrobust.training.checkpoint import CHECKPOINT, TEMPORARY, atomic_write_text, load_checkpoint
from medrobust.training.lock import LOCK, run_lock
from medrobust.training.loop import Callback, History, fit, predict, resolve_device
from medrobust.training.optim import build_optimizer, build_scheduler

CONFIG = "config.yaml"
METRICS = "metrics.json"
# Settings that may change between an interrupted run and its --resume.
RESUMABLE_CHANGES = {
    ("train", key) for key in ("epochs", "progress", "device", "threads", "channels_last", "compile")
}


@dataclass
class Run:
    """A trained run loaded from disk."""

    path: Path
    config: ExperimentConfig
    model: nn.Module
    task: Any  # an AnyTask (classification, segmentation or landmark); Any so callers need not narrow it
    history: list[dict[str, Any]]
    info: data.DatasetInfo | None = None  # the training split's description, as saved in the checkpoint

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.name

    def dataset(self, split: str = "test") -> ArrayDataset:
        """Load ``split`` of the dataset this run was trained on."""
        return load_split(self.config, split)


def load_split(config: ExperimentConfig, split: str) -> ArrayDataset:
    """Load ``split`` of ``config.data``."""
    return data.load(config.data.name, split, root=config.data.root, **config.data.options)


def build_model(
    config: ExperimentConfig, info: data.DatasetInfo, task: AnyTask, train: ArrayDataset | None
) -> nn.Module:
    """The model of ``config`` for data described by ``info`` (normalisation statistics from ``train``)."""
    mean, std = _normalisation(config.model.normalize, info.channels, train)
    return models.create(
        config.model.name,
        in_channels=info.channels,
        num_outputs=task.output_dim,
        mean=mean,
        std=std,
        **model_options(config, info),
    )


def model_options(config: ExperimentConfig, info: data.DatasetInfo) -> dict[str, Any]:
    """``config.model.options`` with ``spatial_dims=3`` for volumes unless set, and the input's spatial size as
    ``image_size`` for models built for one (MONAI's)."""
    options = dict(config.model.options)
    if len(info.spatial) == 3:
        options.setdefault("spatial_dims", 3)
    if models.takes_image_size(config.model.name):
        options["image_size"] = list(info.spatial)
    return options


def _normalisation(mode: str, channels: int, train: ArrayDataset | None) -> tuple[list[float], list[float]]:
    if mode == "none" or train is None:
        return [0.0] * channels, [1.0] * channels
    if mode != "auto":
        raise ConfigError(f"unknown model.normalize {mode!r}; use 'auto' (training-set mean/std) or 'none'")
    return channel_mean_std(train.images)


def channel_mean_std(images: Rows, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``(N, C, *spatial)`` images in [0, 1] (uint8 scaled by 1/255), in float64
    chunks of ``chunk`` samples, so a large split is never copied to float whole."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].double()
        x = x / 255.0 if images.dtype == torch.uint8 else x
        x = x.transpose(0, 1).reshape(images.shape[1], -1)
        total += x.sum(dim=1)
        squares += (x * x).sum(dim=1)
    count = images.numel() // images.shape[1]
    mean = total / count
    var = (squares - count * mean * mean).clamp_min(0) / max(count - 1, 1)
    return mean.tolist(), var.sqrt().clamp_min(1e-3).tolist()


def train_run(
    config: ExperimentConfig,
    out: str | Path,
    *,
    resume: bool = False,
    callbacks: tuple[Callback, ...] = (),
    force: bool = False,
) -> tuple[Run, History]:
    """Train ``config`` into run folder ``out`` (continuing it with ``resume=True``).

    The folder is locked while training: a second ``train_run`` or ``evaluate`` aimed at it is refused. A
    non-empty ``out`` that is not a medrobust run is refused unless ``force`` (its files are then left as they are).
    Under ``torchrun`` every process calls this; they train data-parallel and rank 0 alone locks and writes ``out``
    (docs/distributed.md).
    """
    out = Path(out)
    check_names(config)
    check_out_folder(out, force)
    lock = main_only(run_lock(out, "train"))
    with num_threads(config.train.threads), lock, distributed(resolve_device(config.train.device)) as device:
        return _train_locked(config, out, resume, callbacks, device)


def _train_locked(
    config: ExperimentConfig, out: Path, resume: bool, callbacks: tuple[Callback, ...], device: torch.device
) -> tuple[Run, History]:
    _check_resume(config, out, resume)
    train = load_split(config, "train")
    val = load_split(config, "val")
    task = train.task()
    torch.manual_seed(config.train.seed)  # the weight initialisation is part of the run's seed
    model = build_model(config, train.info, task, train)
    if config.train.init:
        model.load_state_dict(load_run(config.train.init).model.state_dict())
    method = METHODS.create(config.method.name, **method_options(config))
    optimizer = build_optimizer(model.parameters(), config.optim)
    scheduler = build_scheduler(optimizer, config.optim, config.train.epochs)
    out.mkdir(parents=True, exist_ok=True)
    main = world().main
    if main:
        atomic_write_text(out / CONFIG, dump_config(config))
    t = config.train
    history = fit(
        model,
        method,
        train,
        val,
        task=task,
        optimizer=optimizer,
        scheduler=scheduler,
        epochs=t.epochs,
        batch_size=t.batch_size,
        eval_batch_size=t.eval_batch_size,
        run_dir=out,
        resume=resume,
        seed=t.seed,
        device=device,
        amp=t.amp,
        amp_attack=t.amp_attack,
        channels_last=t.channels_last,
        compile_model=t.compile,
        sync_bn=t.sync_bn,
        grad_clip=t.grad_clip,
        progress=t.progress,
        callbacks=callbacks,
        extra_state={"config": config.to_dict(), "dataset": train.info.to_dict(), "task": dataclasses.asdict(task)},
    )
    model.eval()
    if main:
        test = load_split(config, "test")
        outputs, targets = predict(model, test, batch_size=t.eval_batch_size, device=device)
        metrics = {"split": "test", "n": len(test), **task.metrics(outputs, targets), "provenance": provenance()}
        atomic_write_text(out / METRICS, json.dumps(metrics, indent=2))
    return Run(out, config, model, task, history.records), history


RUN_OPTIONS = ("clean_run", "z")  # method options resolved here, from other runs, before the method is built


def method_options(config: ExperimentConfig) -> dict[str, Any]:
    """The method's options, with AMAT's ``clean_run`` (and ``z``) turned into the loss threshold ``tau``.

    ``clean_run`` names a standard run; its model's per-sample losses on its training split give
    ``τ = Huber mean + z·Huber scale`` (:func:`~medrobust.methods.loss_threshold.loss_threshold`).
    """
    options = dict(config.method.options)
    clean_run, z = options.pop("clean_run", None), options.pop("z", None)
    if clean_run is None:
        if z is not None:
            raise ConfigError("method option z needs clean_run (the standard run whose losses set tau)")
        return options
    if options.get("tau") is not None:
        raise ConfigError("give the method either tau or clean_run, not both")
    run = load_run(clean_run)
    losses = per_sample_losses(run.model, run.dataset("train"), run.task)
    options["tau"] = loss_threshold(losses.numpy(), z=1.0 if z is None else float(z))
    return options


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` holds a medrobust run (its ``config.yaml`` or ``checkpoint.pt``)."""
    return (path / CONFIG).is_file() or (path / CHECKPOINT).is_file()


def check_out_folder(out: Path, force: bool = False) -> None:
    """Refuse to write a run into ``out`` if it is a file, or a non-empty folder that is not a run (unless ``force``).

    Raises:
        ConfigError: one line saying what ``out`` is and what to do.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder")
    if force or not out.exists() or is_run_folder(out):
        return
    if any(p.name != LOCK and not p.name.endswith(TEMPORARY) for p in out.iterdir()):  # a run killed early
        raise ConfigError(f"--out {out} is not empty and is not a medrobust run; choose another folder or pass --force")


def check_names(config: ExperimentConfig) -> None:
    """Fail fast (before any data is loaded) on unknown dataset, model, method or option names."""
    data.DATASETS.get(config.data.name)
    models.MODELS.get(config.model.name)
    options = {k: v for k, v in config.method.options.items() if k not in RUN_OPTIONS}
    check_options(f"method {config.method.name!r}", METHODS.get(config.method.name).factory, options)
    if config.train.epochs < 1 or config.train.batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be ≥ 1, got {config.train.epochs} and {config.train.batch_size}")


def _check_resume(config: ExperimentConfig, out: Path, resume: bool) -> None:
    saved = out / CONFIG
    if not resume or not (out / CHECKPOINT).exists():
        return
    if not saved.exists():
        return
    old, new = load_config(saved).to_dict(), config.to_dict()
    for section, values in new.items():
        for key, value in values.items():
            if old[section][key] != value and (section, key) not in RESUMABLE_CHANGES:
                raise ConfigError(
                    f"--resume with a different {section}.{key} ({old[section][key]!r} → {value!r}); "
                    f"use the saved config {saved} or a new --out folder"
                )


def load_run(path: str | Path, *, device: str = "cpu") -> Run:
    """Load a run folder (or a ``checkpoint.pt``) into a :class:`Run` with the model in eval mode."""
    p = Path(path)
    ckpt = p / CHECKPOINT if p.is_dir() else p
    if not p.exists():
        raise DataError(
            f"run {str(p)!r} not found; pass a run folder written by 'medrobust train' or its checkpoint.pt"
        )
    if p.is_dir() and not ckpt.exists():
        raise DataError(f"{str(p)!r} holds no {CHECKPOINT}; it is not a (finished or started) medrobust run")
    state = load_checkpoint(ckpt)
    try:
        config = ExperimentConfig.from_dict(state["config"])
        info = data.DatasetInfo(
            **{
                **state["dataset"],
                "spatial": tuple(state["dataset"]["spatial"]),
                "class_names": tuple(state["dataset"]["class_names"]),
            }
        )
        task = task_from_dict(state["task"])
    except (KeyError, TypeError) as e:
        raise DataError(f"{ckpt} lacks run metadata ({e}); it was not written by 'medrobust train'") from None
    model = build_model(config, info, task, None)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return Run(ckpt.parent, config, model, task, list(state.get("history", [])), info)


def load_model(path: str | Path, *, device: str = "cpu") -> nn.Module:
    """The trained model of a run folder, in eval mode, taking inputs in [0, 1].

    Example:
        >>> model = medrobust.load_model("runs/phantom-standard")  # doctest: +SKIP
    """
    return load_run(path, device=device).model
