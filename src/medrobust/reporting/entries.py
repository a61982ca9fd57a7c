"""One compared run (:class:`Entry`) and its status column, shared by the comparison tables."""

from __future__ import annotations

import math
from dataclasses import dataclass

from medrobust.evaluation.results import Results


@dataclass(frozen=True)
class Entry:
    """One compared run: its name, method, evaluation results and mean training seconds per epoch."""

    name: str
    method: str
    results: Results
    epoch_seconds: float = math.nan


def status(results: Results) -> str:
    """``"ok"``, ``"FAIL: clean ≤ majority rate"``, or ``"check: NAME, …"`` for other failed sanity checks."""
    failed = [c["name"] for c in results.failed_checks]
    if any(name.startswith("above_majority") for name in failed):
        return "FAIL: clean ≤ majority rate"
    return "ok" if not failed else "check: " + ", ".join(failed)
