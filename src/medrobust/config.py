"""Experiment configuration: dataclasses ⇄ YAML, with dotted ``--set a.b=c`` overrides.

A run is fully described by an :class:`ExperimentConfig`; the resolved config is saved as ``config.yaml`` in
the run folder, so ``medrobust train --config RUN/config.yaml`` reproduces it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medrobust.errors import ConfigError
from medrobust.registry import suggest


@dataclass
class DataConfig:
    """Which dataset to train on and its loader options (e.g. ``size``, ``n``, ``flag``)."""

    name: str = "phantom-ct"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Model name and options. ``normalize: auto`` uses the training split's per-channel mean and std."""

    name: str = "small_cnn"
    options: dict[str, Any] = field(default_factory=dict)
    normalize: str = "auto"


@dataclass
class MethodConfig:
    """Training method name and its options."""

    name: str = "standard"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimizer (``sgd``, ``adam``, ``adamw``) and learning-rate schedule (``none``, ``multistep``, ``piecewise``,
    ``poly``, ``cosine``); ``lr_values`` are the piecewise schedule's rates from each milestone on, ``power`` the
    poly schedule's exponent."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    lr_values: list[float] = field(default_factory=list)
    power: float = 0.9


@dataclass
class TrainConfig:
    """Loop settings. ``init`` names a run folder or checkpoint whose weights start the training; ``threads``
    sets torch's CPU threads (0: torch's default, one per core); ``sync_bn`` normalises BatchNorm over the global
    batch under ``torchrun`` on GPUs (docs/distributed.md); ``grad_clip`` > 0 clips the gradient's global L2 norm
    before each step (nnU-Net: 12). GPU settings: ``amp`` (bfloat16 autocast of the update on CUDA),
    ``amp_attack`` (the attacks under it too; default fp32), ``channels_last`` (memory layout) and ``compile``
    (``torch.compile`` the model)."""

    epochs: int = 5
    batch_size: int = 64
    eval_batch_size: int = 256
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    progress: bool = True
    init: str | None = None
    threads: int = 0
    sync_bn: bool = False
    amp_attack: bool = False
    channels_last: bool = False
    compile: bool = False
    grad_clip: float = 0.0


@dataclass
class ExperimentConfig:
    """Everything that defines a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Build from a nested dict; unknown keys and wrong types raise :class:`ConfigError`."""
        return _build(cls, data, "")

    def with_overrides(self, assignments: list[str]) -> ExperimentConfig:
        """Apply ``key.sub=value`` strings (values parsed as YAML)."""
        values: dict[str, Any] = {}
        for item in assignments:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--set expects key=value (e.g. optim.lr=0.01), got {item!r}")
            values[key.strip()] = _parse_value(raw)
        return self.with_values(values)

    def with_values(self, values: dict[str, Any]) -> ExperimentConfig:
        """Apply already-typed values by dotted key, e.g. ``{"train.epochs": 3}``."""
        data = self.to_dict()
        for key, value in values.items():
            _assign(data, key.split("."), value)
        return ExperimentConfig.from_dict(data)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a YAML experiment file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return ExperimentConfig.from_dict(data)


def dump_config(config: ExperimentConfig) -> str:
    """YAML text of ``config``."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _parse_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _assign(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            where = ".".join(path[: i + 1])
            if nxt is None and part not in node:
                raise ConfigError(f"unknown config key {where!r}{suggest(part, list(node))}")
            raise ConfigError(f"config key {where!r} is a value, not a section")
        node = nxt
    node[path[-1]] = value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or 'top level'!r} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}{suggest(str(key), names)}")
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)  # type: ignore[arg-type]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {path!r} must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {path!r} must be a mapping, got {value!r}")
        return dict(value)
    return _scalar(tp, value, path)


def _scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"config key {path!r} must be {tp.__name__}, got {value!r}")
