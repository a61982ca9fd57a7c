"""Views of evaluation results: tables (Markdown, CSV, LaTeX) and figures (PNG).

The figure functions import matplotlib on first use, so that commands which draw nothing start fast.
"""

from typing import Any

from medrobust.reporting.tables import Table, format_level, metrics_table, summary_table, threat_table

__all__ = [
    "Table",
    "format_level",
    "metrics_table",
    "reliability_diagram",
    "robustness_curves",
    "summary_table",
    "threat_table",
]


def __getattr__(name: str) -> Any:
    if name in ("reliability_diagram", "robustness_curves"):
        from medrobust.reporting import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'medrobust.reporting' has no attribute {name!r}")
