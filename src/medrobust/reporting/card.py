"""The robustness card of an evaluated run (``card.json`` + ``card.md``) and the leaderboard of several cards.

The card carries RobustBench's model-card fields — architecture, dataset, threat model, ε, clean accuracy,
robust accuracy under the strongest attack, number of forward passes when known, an "unreliable" flag (here: a
sanity check failed) and corruption accuracy — plus the medical ones: sensitivity and specificity under the
worst attack. Every number is copied from :class:`~medrobust.evaluation.results.Results`, never recomputed.

The *worst attack* is the attack threat with the lowest accuracy at its largest ε; its accuracy there is the
worst-case robust accuracy the leaderboard ranks by (runs without attack rows rank last).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medrobust.errors import DataError
from medrobust.evaluation.results import Results, json_safe
from medrobust.reporting.tables import CellKind, Table, format_level
from medrobust.training.checkpoint import atomic_write_text

CARD_SCHEMA = "medrobust.card/1"
CARD_JSON, CARD_MD = "card.json", "card.md"
_MEDICAL = ("sensitivity", "specificity", "balanced_accuracy", "auc")


def build_card(results: Results, name: str = "") -> dict[str, Any]:
    """The card of ``results`` (see the module docstring); ``name`` defaults to the run folder's name."""
    s = results.summary
    attacks = [_attack(results, t) for t in s.get("threats", []) if t["kind"] == "attack" and t["levels"]]
    worst = min(attacks, key=lambda a: (_nan_last(a["accuracy"]), a["threat"]), default=None)
    noises = [t for t in s.get("threats", []) if t["kind"] == "noise"]
    corruption = {t["threat"]: t["mean_accuracy"] for t in noises}
    failed = [c["name"] for c in results.failed_checks]
    run = str(results.config.get("run", ""))
    card = {
        "schema": CARD_SCHEMA,
        "name": name or (Path(run).name if run else results.model),
        "run": run,
        "architecture": results.model,
        "method": results.method,
        "dataset": results.dataset,
        "split": results.split,
        "n": results.n,
        "task": results.task.get("kind", ""),
        "threat_model": worst["threat_model"] if worst else None,
        "eps": worst["eps"] if worst else None,
        "clean_accuracy": s.get("clean_accuracy"),
        "majority_rate": s.get("majority_rate"),
        "worst_attack": worst["threat"] if worst else None,
        "worst_robust_accuracy": worst["accuracy"] if worst else None,
        "worst_attack_metrics": worst["metrics"] if worst else {},
        "auc_robustness": {a["threat"]: a["auc_robustness"] for a in attacks},
        "attacks": attacks,
        "forward_passes": None,  # the evaluation does not count them yet
        "corruption_accuracy": corruption,
        "mean_corruption_accuracy": _mean([v for v in corruption.values() if v is not None]),
        "unreliable": bool(failed),
        "failed_checks": failed,
        "seed": results.seed,
        "versions": results.versions,
    }
    return json_safe(card)


def _attack(results: Results, t: dict[str, Any]) -> dict[str, Any]:
    eps = float(t["levels"][-1])
    metrics = {m: results.value(t["threat"], m, eps, t["norm"]) for m in _MEDICAL if _has(results, t, m, eps)}
    return {
        "threat": t["threat"],
        "threat_model": f"{t['norm']}" if t["norm"] else t["threat"],
        "eps": eps,
        "accuracy": float(t["accuracy"][-1]),
        "auc_robustness": t.get("auc_robustness"),
        "metrics": metrics,
    }


def _has(results: Results, t: dict[str, Any], metric: str, eps: float) -> bool:
    try:
        results.value(t["threat"], metric, eps, t["norm"])
    except KeyError:
        return False
    return True


def _nan_last(v: float) -> float:
    return math.inf if v is None or math.isnan(v) else v


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def card_markdown(card: dict[str, Any]) -> str:
    """The card as a short Markdown page (the same numbers as ``card.json``)."""
    unreliable = "**yes**: " + ", ".join(card["failed_checks"]) if card["unreliable"] else "no"
    eps = format_level(card["eps"]) if card["eps"] is not None else "—"
    lines = [
        f"# Robustness card: {card['name']}",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | {card['architecture'] or '—'} |",
        f"| method | {card['method'] or '—'} |",
        f"| dataset | {card['dataset'] or '—'} ({card['split']}, n = {card['n']}) |",
        f"| task | {card['task'] or '—'} |",
        f"| threat model | {card['threat_model'] or '—'}, ε = {eps} |",
        f"| clean accuracy | {_num(card['clean_accuracy'])} |",
        f"| majority-class rate | {_num(card['majority_rate'])} |",
        f"| worst-case robust accuracy | {_num(card['worst_robust_accuracy'])} ({card['worst_attack'] or 'no attack'})"
        " |",
    ]
    for metric, value in card["worst_attack_metrics"].items():
        lines.append(f"| {metric.replace('_', ' ')} under the worst attack | {_num(value)} |")
    for threat, value in card["auc_robustness"].items():
        lines.append(f"| AUC-robustness ({threat}) | {_num(value)} |")
    for threat, value in card["corruption_accuracy"].items():
        lines.append(f"| corruption accuracy ({threat}, mean over levels) | {_num(value)} |")
    fp = card["forward_passes"]
    lines += [f"| forward passes | {fp if fp is not None else 'not recorded'} |", f"| unreliable | {unreliable} |"]
    return "\n".join(lines) + "\n"


def _num(v: Any) -> str:
    return "—" if v is None else f"{float(v):.4f}"


def write_card(results: Results, folder: str | Path, name: str = "") -> list[Path]:
    """Write ``card.json`` and ``card.md`` of ``results`` into ``folder`` (atomically); returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card = build_card(results, name or folder.name)
    atomic_write_text(folder / CARD_JSON, json.dumps(card, indent=1, allow_nan=False) + "\n")
    atomic_write_text(folder / CARD_MD, card_markdown(card))
    return [folder / CARD_JSON, folder / CARD_MD]


def load_card(path: str | Path) -> dict[str, Any]:
    """Read a ``card.json`` (or the card of a run folder); raises :class:`DataError` if missing or foreign."""
    path = Path(path)
    path = path / CARD_JSON if path.is_dir() else path
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no robustness card at {path}; run 'medrobust evaluate' on the run first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path} as JSON ({e}); re-run 'medrobust evaluate'") from None
    if not isinstance(card, dict) or card.get("schema") != CARD_SCHEMA:
        raise DataError(f"{path} is not a medrobust robustness card (expected schema {CARD_SCHEMA!r})")
    return card


def learnt_nothing(card: dict[str, Any]) -> bool:
    """True when the run's clean accuracy is at or below the majority-class rate (check ``above_majority``)."""
    return any(name.startswith("above_majority") for name in card.get("failed_checks", []))


def rank_cards(cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cards ordered by worst-case robust accuracy (highest first), ties by clean accuracy; runs without an attack
    last. A run that learnt nothing (clean accuracy ≤ majority-class rate) goes below every run that did, since a
    constant classifier keeps its accuracy under any attack and would otherwise top the board."""

    def key(c: dict[str, Any]) -> tuple[bool, float, float, str]:
        worst, clean = c.get("worst_robust_accuracy"), c.get("clean_accuracy")
        return (learnt_nothing(c), -(worst if worst is not None else -math.inf),
                -(clean if clean is not None else -math.inf), c["name"])  # fmt: skip

    return sorted(cards, key=key)


def leaderboard(cards: Sequence[dict[str, Any]]) -> Table:
    """The leaderboard :class:`Table`: rank, run, method, clean and worst-case robust accuracy, the worst
    attack's sensitivity/specificity, mean corruption accuracy and the unreliable flag."""
    rows = []
    for i, c in enumerate(rank_cards(cards), start=1):
        m = c.get("worst_attack_metrics", {})
        threat = f"{c['worst_attack']} {c['threat_model']} ε {format_level(c['eps'])}" if c["worst_attack"] else "—"
        rows.append((str(i), c["name"], c["method"], c["clean_accuracy"], c["worst_robust_accuracy"], threat,
                     m.get("sensitivity"), m.get("specificity"), c["mean_corruption_accuracy"],
                     _flag(c)))  # fmt: skip
    header = ("rank", "run", "method", "clean acc", "worst robust acc", "worst attack", "sensitivity (worst)",
              "specificity (worst)", "corruption acc", "flag")  # fmt: skip
    v: CellKind = "value"
    t: CellKind = "text"
    kinds = (t, t, t, v, v, t, v, v, v, t)
    return Table(header, tuple(rows), kinds, "leaderboard (ranked by worst-case robust accuracy)")


def _flag(card: dict[str, Any]) -> str:
    if learnt_nothing(card):
        return "FAIL: clean ≤ majority rate"
    return "UNRELIABLE" if card["unreliable"] else "ok"


def write_leaderboard(results: Sequence[tuple[str, Results]], out: str | Path) -> list[Path]:
    """Write each run's card beside its results (the run folder in ``config["run"]``, else ``out/NAME``), print
    the leaderboard and save it as ``out/leaderboard.md/.csv/.tex``; returns the written paths."""
    out = Path(out)
    written, cards = [], []
    for name, res in results:
        run = res.config.get("run")
        written += write_card(res, Path(run) if run else out / name, name)
        cards.append(build_card(res, name))
    table = leaderboard(cards)
    print("\n" + table.to_markdown())
    out.mkdir(parents=True, exist_ok=True)
    return written + table.save(out / "leaderboard")
