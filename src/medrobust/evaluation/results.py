"""Evaluation results as data: the ``medrobust.results/1`` schema, JSON IO and row queries.

``results.json`` holds ``{"schema", "dataset", "split", "model", "method", "task", "n", "rows", "summary",
"checks", "config", "versions", "seed", "seconds"}``. Each row is one number: ``{"threat", "norm", "level",
"metric", "value", "n"}``; clean rows have ``threat: "clean"``, ``norm: null``, ``level: 0``. Non-finite values
(e.g. AUC with one class absent) are written as ``null`` and read back as NaN.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medrobust.errors import DataError
from medrobust.tasks.base import Capabilities
from medrobust.tasks.records import record_capabilities
from medrobust.training.checkpoint import atomic_write_text

SCHEMA = "medrobust.results/1"
FIELDS = ("schema", "dataset", "split", "model", "method", "task", "n", "rows", "summary", "checks", "config",
          "versions", "seed", "seconds")  # fmt: skip


@dataclass
class Results:
    """The outcome of :func:`medrobust.evaluation.evaluate`.

    Attributes:
        rows: tidy rows ``{"threat", "norm", "level", "metric", "value", "n"}``.
        summary: clean accuracy, majority-class rate and per-threat curve summaries (see the runner).
        checks: sanity checks ``{"name", "passed", "message"}``.
        n: number of evaluated samples.
        task: the task record: its settings, ``kind`` and ``capabilities`` (see :attr:`capabilities`).
        dataset, split, model, method: what was evaluated (free text; empty when unknown).
        config: evaluation settings (threats, batch size, …).
        versions: package versions and the run's provenance (threads, CPU kernels, BLAS, CPU model).
        seed: the evaluation seed.
        seconds: wall-clock time of the evaluation.
    """

    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0
    task: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""
    split: str = ""
    model: str = ""
    method: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    seconds: float = 0.0

    def rows_for(
        self, threat: str | None = None, metric: str | None = None, norm: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows matching every given field (``None`` matches anything), in stored order."""
        return [
            r for r in self.rows
            if (threat is None or r["threat"] == threat)
            and (metric is None or r["metric"] == metric)
            and (norm is None or r["norm"] == norm)
        ]  # fmt: skip

    def curve(self, threat: str, metric: str = "accuracy", norm: str | None = None) -> tuple[list[float], list[float]]:
        """``(levels, values)`` of ``metric`` under ``threat`` (ascending levels)."""
        rows = sorted(self.rows_for(threat, metric, norm), key=lambda r: r["level"])
        return [float(r["level"]) for r in rows], [float(r["value"]) for r in rows]

    def value(self, threat: str, metric: str, level: float = 0.0, norm: str | None = None) -> float:
        """The single value of ``metric`` under ``threat`` at ``level``; raises ``KeyError`` if absent."""
        for r in self.rows_for(threat, metric, norm):
            if math.isclose(r["level"], level, rel_tol=1e-9, abs_tol=1e-12):
                return float(r["value"])
        raise KeyError(f"no row for threat={threat!r} metric={metric!r} level={level} norm={norm!r}")

    @property
    def capabilities(self) -> Capabilities:
        """What the evaluated task supports (dense, headline metrics, calibration, majority rate), read from the
        task record; older files without them derive them from the task's kind."""
        return record_capabilities(self.task)

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        """The checks that did not pass."""
        return [c for c in self.checks if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (schema ``medrobust.results/1``)."""
        d = dataclasses.asdict(self)
        return {k: (SCHEMA if k == "schema" else d[k]) for k in FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "results") -> Results:
        """Inverse of :meth:`to_dict`; raises :class:`DataError` on a foreign or incomplete document."""
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            found = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise DataError(f"{source} is not a medrobust results file (schema {found!r}, expected {SCHEMA!r})")
        missing = [k for k in FIELDS if k not in d]
        if missing or not isinstance(d["rows"], list):
            raise DataError(f"{source} lacks {', '.join(missing) or 'a rows list'}; re-run 'medrobust evaluate'")
        try:
            rows = [{**r, "value": float("nan") if r["value"] is None else float(r["value"])} for r in d["rows"]]
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source} has malformed rows; re-run 'medrobust evaluate'") from None
        return cls(**{**{k: d[k] for k in FIELDS if k != "schema"}, "rows": rows})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (temporary file + rename); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, _dumps(json_safe(self.to_dict())) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Results:
        """Read a file written by :meth:`save`; raises :class:`DataError` if it is missing, corrupt or foreign."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"no results file at {path}; run 'medrobust evaluate' first") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read {path} as JSON ({e}); re-run 'medrobust evaluate'") from None
        return cls.from_dict(d, source=str(path))


def _dumps(doc: dict[str, Any]) -> str:
    """Indented JSON with one line per row (readable and diff-friendly)."""
    sentinel = "\u0000rows\u0000"
    text = json.dumps({**doc, "rows": sentinel}, indent=1, allow_nan=False)
    rows = ",\n  ".join(json.dumps(r, allow_nan=False) for r in doc["rows"])
    return text.replace(json.dumps(sentinel), f"[\n  {rows}\n ]" if rows else "[]", 1)


def json_safe(obj: Any) -> Any:
    """Replace non-finite floats by ``None`` recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
