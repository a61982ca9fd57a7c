"""Resumable evaluation: a partial-results file that lets an interrupted evaluation restart where it stopped.

The evaluation of a threat grid is deterministic given its seed (each threat has its own generator, and the batches
are fixed), so its state after each finished threat, and after each finished batch of an attack, is: the model
outputs so far and the attack audit (every batch draws from its own generator of seed, threat and batch).
:class:`Progress` keeps that state in one file, rewritten atomically after every step, keyed by everything the
numbers depend on (grid, seed, subset, batch size, data size, task): a file with another key is ignored and
replaced. A resumed evaluation therefore produces exactly the rows of an uninterrupted one. The file is loaded with
``torch.load(weights_only=True)`` (tensors, numbers, strings and containers only) and removed once the evaluation
completes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from medrobust.training.checkpoint import atomic_write_bytes

__all__ = ["Progress"]


class Progress:
    """The saved state of one evaluation, or a no-op when ``path`` is None.

    Args:
        path: the partial-results file (e.g. ``results.json.partial``), or None for no resumption.
        key: a description of everything the evaluation's numbers depend on; it is hashed.
        interval: seconds between two saves within a threat (a finished threat is always saved), so that large
            dense outputs are not rewritten after every batch.
    """

    def __init__(self, path: str | os.PathLike[str] | None, key: dict[str, Any], *, interval: float = 10.0) -> None:
        self.path = None if path is None else Path(path)
        self.interval, self.last_save = interval, time.monotonic()
        self.key = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self.state: dict[str, Any] = {"key": self.key, "specs": {}, "partial": {}}
        if self.path is not None and self.path.is_file():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a file we cannot read is not ours to trust: start over (it is replaced on save)
            return
        if isinstance(saved, dict) and saved.get("key") == self.key:
            self.state = saved

    @property
    def resumed(self) -> bool:
        """True when saved work was found."""
        return bool(self.state["specs"] or self.state["partial"])

    def done(self, spec: int) -> list[Tensor] | None:
        """The outputs of threat ``spec`` if it finished before, one tensor per level."""
        found = self.state["specs"].get(str(spec))
        return None if found is None else list(found["outputs"])

    def audit(self, spec: int) -> dict[str, Any] | None:
        """The attack audit of a finished or partly finished threat ``spec``."""
        found = self.state["specs"].get(str(spec)) or self.state["partial"].get(str(spec))
        return None if found is None else found.get("audit")

    def batches(self, spec: int) -> list[list[Tensor]]:
        """The per-batch outputs of a partly finished threat (every batch draws from its own generator)."""
        found = self.state["partial"].get(str(spec))
        return [] if found is None else [list(b) for b in found["batches"]]

    def save_batch(self, spec: int, batches: list[list[Tensor]], audit: dict[str, Any]) -> None:
        """Record the outputs of the first ``len(batches)`` batches of threat ``spec`` (at most every ``interval``)."""
        if time.monotonic() - self.last_save < self.interval:
            return
        self.state["partial"][str(spec)] = {"batches": batches, "audit": audit}
        self._save()

    def save_spec(self, spec: int, outputs: list[Tensor], audit: dict[str, Any] | None) -> None:
        """Record the finished outputs of threat ``spec``."""
        self.state["partial"].pop(str(spec), None)
        self.state["specs"][str(spec)] = {"outputs": outputs, "audit": audit}
        self._save()

    def finish(self) -> None:
        """Remove the file: the evaluation completed."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(self.state, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())
        self.last_save = time.monotonic()
