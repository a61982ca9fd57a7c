"""Export a trained run's model to a safetensors file, and rebuild the model from such a file.

The file holds the weights with the normalisation inside (the model takes inputs in [0, 1], as everywhere in
medrobust) and, as string metadata, what is needed to rebuild it: architecture name and options, in_channels,
number of outputs, the dataset and task records, the run's config and the medrobust version.

Example:
    >>> import torch
    >>> from medrobust import models
    >>> from medrobust.training.export import export_model, load_exported
    >>> net = models.create("small_cnn", in_channels=1, num_outputs=2, width=4).eval()
    >>> path = getfixture("tmp_path") / "model.safetensors"
    >>> export_model(net, path, architecture="small_cnn", options={"width": 4}, in_channels=1, num_outputs=2)
    >>> x = torch.rand(3, 1, 16, 16)
    >>> torch.equal(load_exported(path)(x), net(x))
    True
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from medrobust import models
from medrobust.errors import DataError
from medrobust.training.runs import load_run, model_options
from medrobust.training.tensorfile import load_tensors, save_tensors

FORMAT = "medrobust.export/1"


def export_model(
    model: nn.Module,
    out: str | Path,
    *,
    architecture: str,
    options: dict[str, Any],
    in_channels: int,
    num_outputs: int,
    records: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s weights and buffers (normalisation included) and how to rebuild it to ``out``.

    Args:
        model: a model built by :func:`medrobust.models.create` with ``architecture`` and ``options``.
        out: the ``.safetensors`` file to write (atomically).
        architecture: registered model name; ``options``: its options (JSON-serialisable).
        in_channels: input channels; ``num_outputs``: number of outputs.
        records: more JSON-serialisable metadata (dataset, task, config), each stored under its key.
    """
    from medrobust import __version__  # the package imports training: read the version on use

    metadata = {
        "format": FORMAT,
        "architecture": architecture,
        "options": json.dumps(options),
        "in_channels": str(in_channels),
        "num_outputs": str(num_outputs),
        "medrobust_version": __version__,
        **{k: json.dumps(v) for k, v in (records or {}).items()},
    }
    save_tensors(out, dict(model.state_dict()), metadata)


def export_run(run: str | Path, out: str | Path) -> None:
    """Export the model of run folder (or checkpoint) ``run`` to ``out`` with its dataset, task and config."""
    r = load_run(run)
    assert r.info is not None  # load_run always records it
    export_model(
        r.model,
        out,
        architecture=r.config.model.name,
        options=model_options(r.config, r.info),
        in_channels=r.info.channels,
        num_outputs=r.task.output_dim,
        records={"dataset": r.info.to_dict(), "task": dataclasses.asdict(r.task), "config": r.config.to_dict()},
    )


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported file, JSON values decoded."""
    _, metadata = load_tensors(path)
    return _decode(path, metadata)


def load_exported(path: str | Path, *, device: str = "cpu") -> nn.Module:
    """Rebuild the model of a file written by :func:`export_model` / ``medrobust export``, in eval mode.

    Raises:
        DataError: one line if the file is not a valid medrobust export.
    """
    tensors, raw = load_tensors(path)
    meta = _decode(path, raw)
    try:
        model = models.create(
            meta["architecture"], in_channels=meta["in_channels"], num_outputs=meta["num_outputs"], **meta["options"]
        )
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{str(path)!r} does not match its architecture ({first}); export it again") from None
    return model.to(device).eval()


def _decode(path: str | Path, metadata: dict[str, str]) -> dict[str, Any]:
    if metadata.get("format") != FORMAT:
        raise DataError(f"{str(path)!r} was not written by 'medrobust export' (no {FORMAT!r} format entry)")
    try:
        return {
            k: v if k in ("format", "architecture", "medrobust_version") else json.loads(v) for k, v in metadata.items()
        }
    except json.JSONDecodeError as e:
        raise DataError(f"{str(path)!r} has malformed metadata ({e}); export it again") from None
