"""The single-file HTML report of one run, or the comparison report of several.

One self-contained file: CSS inline, every figure an inline base64 PNG, no script and no reference to anything
outside the file, so it can be mailed to a colleague and opened offline. Sections (per run): provenance,
clean metrics (per-class sensitivity / specificity / balanced accuracy), robustness curves per threat with
AUC-robustness and status, the per-attack breakdown, noise-severity tables, ROC curves under attack (binary),
reliability diagrams clean and attacked (calibrated tasks), training curves, IMA/AMAT margin histograms, the
sanity checks (failures highlighted) and the example gallery. Several runs add a comparison section first
(leaderboard from the robustness cards and the curves of all runs on one plot).
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from medrobust.reporting.card import build_card, leaderboard
from medrobust.reporting.comparison import status
from medrobust.reporting.figures import roc_figure, training_curves
from medrobust.reporting.png import data_uri
from medrobust.reporting.sources import RunReport
from medrobust.reporting.tables import Table, format_level, threat_table
from medrobust.training.checkpoint import atomic_write_text

SECTIONS = ("Provenance", "Clean metrics", "Robustness", "Per-attack breakdown", "Noise severity", "ROC under attack",
            "Calibration", "Training", "Margins", "Sanity checks", "Example gallery")  # fmt: skip
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#fff}
body{margin:0 auto;max-width:1180px;padding:16px 28px}
h1{font-size:24px;margin:8px 0 2px}
h2{font-size:19px;border-bottom:2px solid #dde3ea;padding-bottom:3px;margin-top:30px}
h3{font-size:16px;margin:20px 0 6px}
.meta{color:#5a6472;font-size:12px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border:1px solid #d6dce4;padding:3px 8px}
th{background:#f1f4f8}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fde2e1;color:#8a1010;font-weight:600}
.ok{color:#17672e;font-weight:600}
.fail{color:#b3261e;font-weight:700}
.flag{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:700}
.flag.ok{background:#dff3e4}
.flag.fail{background:#fde2e1}
img{max-width:min(100%,520px);height:auto;border:1px solid #eef1f5;margin:4px 8px 4px 0}
figure.wide img{max-width:100%}
figure{display:inline-block;margin:4px 10px 4px 0}
figcaption{font-size:12px;color:#5a6472}
pre{background:#f6f8fa;padding:8px;font-size:12px;overflow:auto;max-height:360px}
nav a{margin-right:10px;font-size:13px}
.note{color:#5a6472;font-style:italic}
"""
MakeFigure = Callable[[Callable[[Path], Path]], str]  # draws a PNG file, returns it as a data URI


def write_report(reports: Sequence[RunReport], out: str | Path, *, title: str = "") -> Path:
    """Render ``reports`` (one: a run report; several: a comparison report) into ``out`` atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(reports, title=title))
    return out


def render(reports: Sequence[RunReport], *, title: str = "") -> str:
    """The report's HTML text."""
    if not reports:
        raise ValueError("render needs at least one run")
    names = ", ".join(r.name for r in reports)
    title = title or (f"medrobust report: {names}" if len(reports) == 1 else f"medrobust comparison: {names}")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<h1>{_e(title)}</h1><p class=meta>generated {stamp} by medrobust "
             f"{_e(reports[0].results.versions.get('medrobust', ''))}</p>"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        figure = _figure_maker(Path(tmp))
        if len(reports) > 1:
            parts.append(_comparison(reports, figure))
        for r in reports:
            parts.append(_run(r, figure, level=2 if len(reports) == 1 else 3, prefix=_slug(r.name)))
    head = (f'<meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style>")  # fmt: skip
    return f"<!DOCTYPE html>\n<html lang=en><head>{head}</head><body>{''.join(parts)}</body></html>\n"


def _figure_maker(tmp: Path) -> MakeFigure:
    """Call a plotting function that writes a PNG file and return the PNG as an ``<img>`` data URI."""
    counter = iter(range(10**9))

    def make(draw: Callable[[Path], Path]) -> str:
        path = draw(tmp / f"fig{next(counter)}.png")
        return data_uri(path.read_bytes())

    return make


def _e(v: object) -> str:
    return html.escape(str(v))


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-").lower() or "run"


def _img(uri: str, alt: str, caption: str = "", *, wide: bool = False) -> str:
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    cls = " class=wide" if wide else ""
    return f'<figure{cls}><img src="{uri}" alt="{_e(alt)}">{cap}</figure>'


def _comparison(reports: Sequence[RunReport], figure: MakeFigure) -> str:
    from medrobust.reporting.plots import robustness_curves

    cards = [build_card(r.results, r.name) for r in reports]
    out = ["<h2 id=comparison>Comparison</h2>", leaderboard(cards).to_html(_unreliable_rows(cards))]
    runs = [(r.name, r.results) for r in reports]
    for t in reports[0].results.summary.get("threats", []):
        tag = f"{t['threat']} {t['norm'] or ''}".strip()
        uri = figure(partial(robustness_curves, runs, threat=t["threat"], norm=t["norm"]))
        out.append(_img(uri, f"accuracy under {tag}, all runs", f"accuracy under {tag}"))
    out.append("<nav>" + "".join(f'<a href="#{_slug(r.name)}">{_e(r.name)}</a>' for r in reports) + "</nav>")
    return "".join(out)


def _unreliable_rows(cards: list[dict[str, Any]]) -> list[int]:
    from medrobust.reporting.card import rank_cards

    return [i for i, c in enumerate(rank_cards(cards)) if c["unreliable"]]


def _run(r: RunReport, figure: MakeFigure, *, level: int, prefix: str) -> str:
    h = f"h{level}"
    body = [f'<h2 id="{prefix}">{_e(r.name)}</h2>'] if level > 2 else []
    contents = (_provenance(r), _clean(r), _robustness(r, figure), _breakdown(r, "attack"), _breakdown(r, "noise"),
                _roc(r), _calibration(r, figure), _training(r), _margins(r), _checks(r), _gallery(r))  # fmt: skip
    for name, content in zip(SECTIONS, contents, strict=True):
        body.append(f'<{h} id="{prefix}-{_slug(name)}">{name}</{h}>{content}')
    return "".join(body)


def _note(text: str) -> str:
    return f"<p class=note>{_e(text)}</p>"


def _provenance(r: RunReport) -> str:
    res = r.results
    fp = r.views.fingerprint if r.views else "not computed (no checkpoint or --no-gallery)"
    rows = [("run", r.name), ("results", str(r.results_path)), ("run folder", str(r.folder or "not found")),
            ("model", res.model), ("method", res.method), ("dataset", f"{res.dataset} ({res.split}, n = {res.n})"),
            ("task", json.dumps(res.task)), ("data fingerprint (SHA-256 of the split)", fp),
            ("evaluation seed", res.seed), ("training seed", "unknown" if r.train_seed is None else r.train_seed),
            ("evaluation seconds", res.seconds), ("threats", json.dumps(res.config.get("threats", [])))]  # fmt: skip
    rows += [(f"version: {k}", v) for k, v in res.versions.items()]
    table = Table(("field", "value"), tuple(rows), ("text", "text"), "provenance")
    config = f"<h4>config.yaml</h4><pre>{_e(r.config_text)}</pre>" if r.config_text else ""
    return table.to_html() + config


def _clean(r: RunReport) -> str:
    clean = r.results.summary.get("clean", {})
    rows = tuple((k, v) for k, v in clean.items())
    majority = r.results.summary.get("majority_rate")
    if majority is not None:
        rows += (("majority-class rate", majority),)
    out = Table(("metric", "value"), rows, ("text", "value"), "clean metrics (results.json)").to_html()
    if r.views and r.views.per_class:
        pc = r.views.per_class
        rows2 = tuple(
            (c["class"], c["support"], c["sensitivity"], c["specificity"], c["balanced_accuracy"]) for c in pc
        )
        t = Table(("class", "support", "sensitivity", "specificity", "balanced accuracy"), rows2,
                  ("text", "text", "value", "value", "value"), f"per class, one-vs-rest (n = {r.views.n})")  # fmt: skip
        out += t.to_html()
    elif r.results.task.get("kind") in ("multiclass", "binary"):
        out += _note("per-class metrics need the run's checkpoint")
    return out


def _threat_status(r: RunReport, t: dict[str, object]) -> tuple[str, bool]:
    run_status = status(r.results)
    mine = [c["name"] for c in r.results.failed_checks if c["name"].endswith(f"[{t['threat']}/{t['norm']}]")]
    if run_status.startswith("FAIL"):
        return run_status, False
    if mine:
        return "check failed: " + ", ".join(mine), False
    return "ok", True


def _robustness(r: RunReport, figure: MakeFigure) -> str:
    from medrobust.reporting.plots import robustness_curves

    threats = r.results.summary.get("threats", [])
    if not threats:
        return _note("no threat was evaluated")
    out = []
    for t in threats:
        tag = f"{t['threat']} {t['norm'] or ''}".strip()
        text, ok = _threat_status(r, t)
        auc, mean = t.get("auc_robustness"), t.get("mean_accuracy")
        stats = (f"AUC-robustness {auc:.4f}, " if auc is not None else "") + (
            f"mean accuracy {mean:.4f}, " if mean is not None else "")  # fmt: skip
        cls = "ok" if ok else "fail"
        out.append(f"<h4>{_e(tag)}</h4><p>{_e(stats)}status <span class='flag {cls}'>{_e(text)}</span></p>")
        uri = figure(partial(robustness_curves, [(r.name, r.results)], threat=t["threat"], norm=t["norm"]))
        out.append(_img(uri, f"accuracy under {tag}"))
    return "".join(out)


def _breakdown(r: RunReport, kind: str) -> str:
    threats = [t for t in r.results.summary.get("threats", []) if t["kind"] == kind]
    if not threats:
        return _note(f"no {kind} threat was evaluated")
    metrics = tuple(r.results.summary.get("clean", {})) or ("accuracy",)  # the task's metrics (Dice, MRE, …)
    out = [threat_table(r.results, t["threat"], t["norm"], metrics).to_html() for t in threats]
    if kind == "attack" and len(threats) > 1:
        worst = build_card(r.results, r.name)
        out.append(f"<p>worst attack: <b>{_e(worst['worst_attack'])}</b> at ε {format_level(worst['eps'])}: "
                   f"accuracy {worst['worst_robust_accuracy']:.4f}</p>")  # fmt: skip
    return "".join(out)


def _roc(r: RunReport) -> str:
    if r.results.task.get("kind") != "binary":
        return _note("ROC curves are drawn for binary classification only")
    if not r.views or not r.views.roc:
        return _note("ROC curves need the run's checkpoint")
    clean = [c for c in r.views.roc if c.threat == "clean"]
    out = []
    threats = {c.threat for c in r.views.roc} - {"clean"}
    norms = {t["threat"]: t["norm"] for t in r.results.summary.get("threats", [])}
    for threat in sorted(threats):
        curves = clean + [c for c in r.views.roc if c.threat == threat]
        out.append(_img(data_uri(roc_figure(curves, threat, norms.get(threat))), f"ROC under {threat}",
                        f"recomputed on n = {r.views.n} samples of the evaluated subset"))  # fmt: skip
    return "".join(out) or _note("no attack was evaluated")


def _calibration(r: RunReport, figure: MakeFigure) -> str:
    from medrobust.reporting.plots import reliability_diagram

    if not r.results.summary.get("reliability"):
        return _note("no calibration for this task (segmentation or landmarks)")
    out = [_img(figure(partial(reliability_diagram, r.results)), "reliability diagram, clean")]
    for t in r.results.summary.get("threats", []):
        for eps, bins in zip(t["levels"], t.get("reliability", [])):
            if eps > 0:
                title = f"reliability under {t['threat']} {t['norm']} ε {format_level(eps)}"
                out.append(_img(figure(partial(reliability_diagram, r.results, title=title, bins=bins)), title))
    return "".join(out)


def _training(r: RunReport) -> str:
    png = training_curves(r.history)
    return (
        _img(data_uri(png), "training curves", wide=True) if png else _note("no training history (history.jsonl) found")
    )


def _margins(r: RunReport) -> str:
    if not r.margin_figures:
        return _note("no margin histograms: only IMA/AMAT runs write margins_epoch*.png")
    return "".join(_img(data_uri(png), name, name, wide=True) for name, png in r.margin_figures)


def _checks(r: RunReport) -> str:
    checks = r.results.checks
    if not checks:
        return _note("no sanity checks recorded")
    rows = tuple(("passed" if c["passed"] else "FAILED", c["name"], c["message"]) for c in checks)
    bad = [i for i, c in enumerate(checks) if not c["passed"]]
    verdict = f"{len(bad)} of {len(checks)} checks failed: the numbers are unreliable"
    head = (f"<p><span class='flag fail'>{verdict}</span></p>"
            if bad else f"<p><span class='flag ok'>all {len(checks)} checks passed</span></p>")  # fmt: skip
    return head + Table(("result", "check", "message"), rows, ("text", "text", "text")).to_html(bad)


def _gallery(r: RunReport) -> str:
    if not r.views or r.views.gallery is None:
        return _note("the gallery needs the run's checkpoint and an attack in the results")
    eps = ", ".join(format_level(e) for e in r.views.gallery_eps)
    return _img(data_uri(r.views.gallery), "example gallery", f"fixed-seed test examples; ε {eps}", wide=True)
