"""The files and text of one evaluation: results.json with its metrics table and figures, per-threat tables and
a few summary lines. Which metrics are shown is asked of the task record (:attr:`Results.capabilities`)."""

from __future__ import annotations

from pathlib import Path

from medrobust.evaluation.results import Results
from medrobust.reporting.card import write_card
from medrobust.reporting.tables import DEFAULT_METRICS, Table, format_level, metrics_table, threat_table

TABLE_METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "rmsce")


def table_metrics(results: Results, default: tuple[str, ...]) -> tuple[str, ...]:
    """``default``, or for a dense task every clean metric (Dice / MRE / SDR …) and then the predicate rate."""
    if not results.capabilities.dense:
        return default
    return (*(m for m in results.summary["clean"] if m != "accuracy"), "accuracy")


def threat_tables(results: Results) -> list[Table]:
    """One table per threat: metrics vs level, the clean row first."""
    metrics = table_metrics(results, TABLE_METRICS)
    return [threat_table(results, t["threat"], t["norm"], metrics) for t in results.summary["threats"]]


def write_results(results: Results, path: Path, name: str) -> list[Path]:
    """Save ``results`` at ``path`` and, beside it, the metrics table (.md/.csv/.tex) and the PNG figures (one
    robustness curve per threat, labelled ``name``; a reliability diagram when the task is calibrated; the
    robustness card ``card.json``/``card.md``).

    Returns the paths written besides ``path``.
    """
    from medrobust.reporting.plots import reliability_diagram, robustness_curves  # matplotlib: import on use

    results.save(path)
    folder = path.parent
    written = metrics_table(results, table_metrics(results, DEFAULT_METRICS)).save(folder / "robustness_table")
    for spec in results.summary["threats"]:
        tag = "_".join(p for p in (spec["threat"], spec["norm"]) if p)
        written.append(robustness_curves([(name, results)], folder / f"robustness_{tag}.png",
                                         threat=spec["threat"], norm=spec["norm"]))  # fmt: skip
    if results.capabilities.calibrated and results.summary.get("reliability"):
        written.append(reliability_diagram(results, folder / "reliability.png"))
    return written + write_card(results, folder, name)  # card.json + card.md (robustness card)


def format_summary(results: Results) -> str:
    """A few lines: clean accuracy beside the majority rate (dense tasks: their metrics and the predicate rate),
    per threat its curve summaries, and failed checks."""
    s = results.summary
    if results.capabilities.has_majority_rate:
        rate = s["majority_rate"]
        head = f"clean accuracy {s['clean_accuracy']:.4f} (majority-class rate {rate:.4f}, n = {results.n})"
    else:  # e.g. segmentation / landmarks: "accuracy" is the rate of Dice ≥ τ / error ≤ τ
        shown = ", ".join(f"{k} {v:.4f}" for k, v in s["clean"].items() if k != "accuracy")
        head = f"clean {shown}; predicate rate {s['clean_accuracy']:.4f} (n = {results.n})"
    lines = [head]
    for t in s["threats"]:
        tag = f"{t['threat']} {t['norm']}" if t["norm"] else t["threat"]
        curve = ", ".join(f"{format_level(v)}: {a:.3f}" for v, a in zip(t["levels"], t["accuracy"]))
        lines.append(f"{tag}: accuracy {curve}")
        if t["auc_robustness"] is not None:
            lines.append(f"  AUC-robustness {t['auc_robustness']:.4f}, mean accuracy {t['mean_accuracy']:.4f}")
    failed = results.failed_checks
    lines.append(f"checks: {len(results.checks) - len(failed)} passed, {len(failed)} failed")
    lines += [f"  ! {c['name']}: {c['message']}" for c in failed]
    return "\n".join(lines)
