"""Tables and files of the binary-classification protocols: the FGSM-augmentation study (one row per grid cell,
after-values with the change against before) and the MRNet protocol (one row per task and model, clean and under
FGSM). Metrics: accuracy, ROC AUC, sensitivity and specificity (:data:`BINARY_METRICS`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medrobust.evaluation.outputs import BINARY_METRICS
from medrobust.reporting.tables import Table, format_level
from medrobust.training.checkpoint import atomic_write_text

SHORT = {"accuracy": "acc", "auc": "AUC", "sensitivity": "sens", "specificity": "spec"}


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Markdown of already formatted cells."""
    return Table.of(header, rows).to_markdown()


def format_metric(v: float | None) -> str:
    """A metric with four decimals, ``—`` for an undefined one."""
    return "—" if v is None else f"{v:.4f}"


def _delta(after: float | None, before: float | None) -> str:
    if after is None or before is None:
        return format_metric(after)
    return f"{after:.4f} ({after - before:+.4f})"


def _columns() -> list[str]:
    return [*(f"clean {SHORT[m]}" for m in BINARY_METRICS), *(f"FGSM {SHORT[m]}" for m in BINARY_METRICS)]


def before_table(result: dict[str, Any]) -> str:
    """FGSM study, the run before fine-tuning: one row per ε (clean metrics repeat; FGSM metrics at that ε)."""
    rows = [
        [format_level(r["eps"]), *(format_metric(r[f"{k}_{m}"]) for k in ("clean", "fgsm") for m in BINARY_METRICS)]
        for r in result["before"]
    ]
    return _markdown(["ε", *_columns()], rows)


def grid_table(result: dict[str, Any]) -> str:
    """FGSM study: one row per cell (and per ε for the control), after-values with the change against before."""
    before = {r["eps"]: r for r in result["before"]}
    rows = []
    for r in result["rows"]:
        b = before[r["eps"]]
        cols = [_delta(r[f"{k}_{m}"], b[f"{k}_{m}"]) for k in ("clean", "fgsm") for m in BINARY_METRICS]
        rows.append(["0 (control)" if r["percent"] == 0 else f"{r['percent']:g}", format_level(r["eps"]), *cols])
    return _markdown(["p %", "ε", *_columns()], rows)


def fgsm_study_markdown(result: dict[str, Any]) -> str:
    """The FGSM study as Markdown: settings, the before table and the grid table."""
    g = result["grid"]
    head = (
        f"FGSM-augmentation study of `{result['run']}` on {result['dataset']['name']} ({result['split']}, "
        f"n = {result['n']}): {g['epochs']} fine-tuning epoch(s) per cell, mode {g['mode']}, norm {g['norm']}, "
        "FGSM evaluated at the cell's ε; sensitivity/specificity at threshold 0.5."
    )
    parts = [head, "Before fine-tuning:", before_table(result), "After fine-tuning (change against before):",
             grid_table(result)]  # fmt: skip
    return "\n\n".join(parts) + "\n"


def write_fgsm_study(result: dict[str, Any], out: str | Path) -> list[Path]:
    """``study.json``, ``study.md`` and one ``roc_eps*.png`` per ε (clean and FGSM panels) in ``out``."""
    from medrobust.reporting.plots import roc_curves  # matplotlib: import on use

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "study.json", out / "study.md"]
    atomic_write_text(paths[0], json.dumps({k: v for k, v in result.items() if k != "curves"}, indent=2))
    atomic_write_text(paths[1], fgsm_study_markdown(result))
    for eps, panels in result["curves"].items():
        level = format_level(eps)
        paths.append(roc_curves([("clean", panels["clean"]), (f"FGSM ε = {level}", panels["fgsm"])],
                                out / f"roc_eps{eps:g}.png",
                                title=f"ROC before and after FGSM fine-tuning (ε = {level})"))  # fmt: skip
    return paths


def mrnet_table(results: dict[str, dict[str, Any]]) -> str:
    """MRNet: one row per task and model (each plane, then fused), clean and (if run) FGSM metrics."""
    fgsm = any("fgsm" in r for r in results.values())
    header = ["task", "model", *(SHORT[m] for m in BINARY_METRICS)]
    header += [f"FGSM {SHORT[m]}" for m in BINARY_METRICS] if fgsm else []
    rows = []
    for task, r in results.items():
        for name, clean in r["clean"].items():
            cells = [clean[m] for m in BINARY_METRICS] + ([r["fgsm"][name][m] for m in BINARY_METRICS] if fgsm else [])
            rows.append([task, name, *(format_metric(v) for v in cells)])
    return _markdown(header, rows)


def write_mrnet(results: dict[str, dict[str, Any]], out: str | Path) -> list[Path]:
    """``mrnet.json``, ``mrnet.md`` (the table) and one ``roc_TASK.png`` per task in ``out``."""
    from medrobust.reporting.plots import roc_curves  # matplotlib: import on use

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "mrnet.json", out / "mrnet.md"]
    doc = {t: {k: v for k, v in r.items() if k != "curves"} for t, r in results.items()}
    atomic_write_text(written[0], json.dumps(doc, indent=2))
    atomic_write_text(written[1], mrnet_table(results) + "\n")
    for task, r in results.items():
        panels = [("clean", r["curves"]["clean"])]
        if "fgsm" in r["curves"]:
            panels.append((f"FGSM ε = {r['eps']:g} (fused model attacked)", r["curves"]["fgsm"]))
        written.append(roc_curves(panels, out / f"roc_{task}.png", title=f"MRNet {task} (test = official valid)"))
    return written
