"""Tables and files of the FGSM-augmentation study: one row per grid cell, after-values with Δ to before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medrobust.reporting.tables import CellKind, Table, format_level
from medrobust.studies.scoring import METRIC_NAMES, roc_figure

SHORT = {"accuracy": "acc", "auc": "AUC", "sensitivity": "sens", "specificity": "spec"}


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Markdown of already formatted cells."""
    text: CellKind = "text"
    kinds = (text,) * len(header)
    return Table(tuple(header), tuple(tuple(r) for r in rows), kinds).to_markdown()


def format_metric(v: float | None) -> str:
    """A metric with four decimals, ``—`` for an undefined one."""
    return "—" if v is None else f"{v:.4f}"


def _delta(after: float | None, before: float | None) -> str:
    if after is None or before is None:
        return format_metric(after)
    return f"{after:.4f} ({after - before:+.4f})"


def before_table(result: dict[str, Any]) -> str:
    """The run before fine-tuning: one row per ε (clean metrics repeat; FGSM metrics at that ε)."""
    header = ["ε", *(f"clean {SHORT[m]}" for m in METRIC_NAMES), *(f"FGSM {SHORT[m]}" for m in METRIC_NAMES)]
    rows = [
        [
            format_level(r["eps"]),
            *(format_metric(r[f"clean_{m}"]) for m in METRIC_NAMES),
            *(format_metric(r[f"fgsm_{m}"]) for m in METRIC_NAMES),
        ]
        for r in result["before"]
    ]
    return format_table(header, rows)


def grid_table(result: dict[str, Any]) -> str:
    """One row per cell (and per ε for the control): after-values with the change against before in brackets."""
    before = {r["eps"]: r for r in result["before"]}
    header = ["p %", "ε", *(f"clean {SHORT[m]}" for m in METRIC_NAMES), *(f"FGSM {SHORT[m]}" for m in METRIC_NAMES)]
    rows = []
    for r in result["rows"]:
        b = before[r["eps"]]
        cols = [_delta(r[f"{k}_{m}"], b[f"{k}_{m}"]) for k in ("clean", "fgsm") for m in METRIC_NAMES]
        rows.append(["0 (control)" if r["percent"] == 0 else f"{r['percent']:g}", format_level(r["eps"]), *cols])
    return format_table(header, rows)


def markdown(result: dict[str, Any]) -> str:
    """The study as Markdown: settings, the before table and the grid table."""
    g = result["grid"]
    head = (
        f"FGSM-augmentation study of `{result['run']}` on {result['dataset']['name']} ({result['split']}, "
        f"n = {result['n']}): {g['epochs']} fine-tuning epoch(s) per cell, mode {g['mode']}, norm {g['norm']}, "
        "FGSM evaluated at the cell's ε; sensitivity/specificity at threshold 0.5."
    )
    return (
        "\n\n".join(
            [
                head,
                "Before fine-tuning:",
                before_table(result),
                "After fine-tuning (change against before):",
                grid_table(result),
            ]
        )
        + "\n"
    )


def write_fgsm_report(result: dict[str, Any], out: str | Path) -> list[Path]:
    """``study.json``, ``study.md`` and one ``roc_eps*.png`` per ε (clean and FGSM panels) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in result.items() if k != "curves"}
    paths = [out / "study.json", out / "study.md"]
    paths[0].write_text(json.dumps(data, indent=2))
    paths[1].write_text(markdown(result))
    for eps, panels in result["curves"].items():
        name = f"roc_eps{eps:g}.png"
        paths.append(
            roc_figure(
                [("clean", panels["clean"]), (f"FGSM ε = {format_level(eps)}", panels["fgsm"])],
                out / name,
                title=f"ROC before and after FGSM fine-tuning (ε = {format_level(eps)})",
            )
        )
    return paths
