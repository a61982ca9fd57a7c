"""Tables as views of :class:`~medrobust.evaluation.results.Results`: Markdown, CSV and LaTeX.

- :func:`threat_table`: one threat, one row per level (clean first), one column per metric.
- :func:`metrics_table`: every (threat, norm, level) row, one column per metric.
- :func:`summary_table`: one row per run: clean accuracy, majority-class rate, and per threat the
  AUC-robustness and mean accuracy over the levels (the shape of the papers' comparison tables).
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from medrobust.evaluation.results import Results
from medrobust.training.checkpoint import atomic_write_text

CellKind = Literal["text", "level", "value", "fixed2"]
DEFAULT_METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "rmsce", "ece", "entropy")
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def format_level(v: float) -> str:
    """Short level text: ``0.1`` → ``"0.1"``, ``8/255`` → ``"8/255"`` (fractions of 255 with a long decimal)."""
    text = f"{v:.6g}"
    if float(text) == v or v == 0:
        return text
    k = Fraction(v).limit_denominator(255)
    if k.denominator in (255, 85, 51, 17, 15) and math.isclose(float(k), v, rel_tol=1e-9):
        return f"{k.numerator * (255 // k.denominator)}/255"
    return text


def _fmt(v: Any, kind: CellKind, nan: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return nan
    if kind == "level":
        return format_level(float(v))
    if kind == "value" and isinstance(v, float):
        return f"{v:.4f}"
    if kind == "fixed2" and isinstance(v, int | float):
        return f"{v:.2f}"
    return str(v)


@dataclass(frozen=True)
class Table:
    """A rectangular table of raw values with a display kind per column.

    Attributes:
        header: column names.
        rows: raw cells (floats stay floats; ``None``/NaN is a missing value).
        kinds: per column ``"text"``, ``"level"`` (ε or noise level), ``"value"`` (4 decimals) or ``"fixed2"`` (2
            decimals, e.g. percentages).
        title: caption.
    """

    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    kinds: tuple[CellKind, ...]
    title: str = ""

    @classmethod
    def of(cls, header: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> Table:
        """A table whose column kinds are inferred: ``"value"`` (4 decimals) where every cell is a float or missing,
        else ``"text"``.

        Example:
            >>> print(Table.of(("run", "accuracy"), [("std", 0.93251), ("sat", None)]).to_markdown())
            | run | accuracy |
            |-----|---------:|
            | std |   0.9325 |
            | sat |        — |
        """
        text: CellKind = "text"
        kinds = tuple(_inferred_kind(col) for col in zip(*rows)) if rows else (text,) * len(header)
        return cls(tuple(header), tuple(tuple(r) for r in rows), kinds, title)

    def to_markdown(self) -> str:
        """Aligned Markdown (also readable as plain text); missing values show as ``—``."""
        cells = [list(self.header), *([_fmt(v, k, "—") for v, k in zip(r, self.kinds)] for r in self.rows)]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        right = [k != "text" for k in self.kinds]
        line = lambda r: "| " + " | ".join(c.rjust(w) if a else c.ljust(w) for c, w, a in zip(r, widths, right)) + " |"  # noqa: E731
        sep = "|" + "|".join("-" * (w + 1) + (":" if a else "-") for w, a in zip(widths, right)) + "|"
        body = "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])
        return f"**{self.title}**\n\n{body}" if self.title else body

    def to_csv(self) -> str:
        """CSV with full-precision numbers; missing values are empty."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.header)
        for r in self.rows:
            w.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in r])
        return buf.getvalue()

    def to_html(self, highlight: Sequence[int] = ()) -> str:
        """An HTML ``<table>`` (escaped; numbers right-aligned; rows whose index is in ``highlight`` get
        ``class="bad"``); missing values show as ``—``."""
        esc = html.escape
        cls = lambda k: ' class="num"' if k != "text" else ""  # noqa: E731
        head = "".join(f"<th{cls(k)}>{esc(h)}</th>" for h, k in zip(self.header, self.kinds))
        body = "".join(
            ('<tr class="bad">' if i in highlight else "<tr>")
            + "".join(f"<td{cls(k)}>{esc(_fmt(v, k, '—'))}</td>" for v, k in zip(r, self.kinds))
            + "</tr>"
            for i, r in enumerate(self.rows)
        )
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_latex(self) -> str:
        """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); missing values show as ``--``."""
        esc = lambda s: "".join(_LATEX_ESCAPES.get(ch, ch) for ch in s)  # noqa: E731
        cols = "".join("l" if k == "text" else "r" for k in self.kinds)
        lines = [f"% {esc(self.title)}"] if self.title else []
        lines += [
            f"\\begin{{tabular}}{{{cols}}}",
            "\\toprule",
            " & ".join(esc(h) for h in self.header) + r" \\",
            "\\midrule",
        ]
        lines += [" & ".join(esc(_fmt(v, k, "--")) for v, k in zip(r, self.kinds)) + r" \\" for r in self.rows]
        return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"

    def save(self, stem: str | Path) -> list[Path]:
        """Write ``stem.md``, ``stem.csv`` and ``stem.tex``; returns the paths."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        texts = {".md": self.to_markdown() + "\n", ".csv": self.to_csv(), ".tex": self.to_latex()}
        paths = []
        for suffix, text in texts.items():
            path = stem.with_name(stem.name + suffix)
            atomic_write_text(path, text)
            paths.append(path)
        return paths


def _inferred_kind(column: Sequence[Any]) -> CellKind:
    return "value" if all(isinstance(v, float) or v is None for v in column) else "text"


def _values(columns: Sequence[str]) -> tuple[CellKind, ...]:
    return tuple("value" for _ in columns)


def _get(results: Results, threat: str, metric: str, level: float, norm: str | None) -> float:
    try:
        return results.value(threat, metric, level, norm)
    except KeyError:
        return float("nan")


def _present(results: Results, metrics: Sequence[str]) -> list[str]:
    have = {r["metric"] for r in results.rows}
    return [m for m in metrics if m in have]


def threat_table(
    results: Results, threat: str, norm: str | None = None, metrics: Sequence[str] = DEFAULT_METRICS
) -> Table:
    """Metrics vs level for one threat, with the clean row first (level 0)."""
    cols = _present(results, metrics)
    levels = sorted({r["level"] for r in results.rows_for(threat=threat, norm=norm)})
    rows = [("clean", 0.0, *(_get(results, "clean", m, 0.0, None) for m in cols))]
    rows += [(threat, lvl, *(_get(results, threat, m, lvl, norm) for m in cols)) for lvl in levels]
    title = f"{results.model or 'model'} under {threat}" + (f" ({norm})" if norm else "")
    return Table(("threat", "level", *cols), tuple(rows), ("text", "level", *_values(cols)), title)


def metrics_table(results: Results, metrics: Sequence[str] = DEFAULT_METRICS) -> Table:
    """Every (threat, norm, level) of ``results`` as a row, one column per metric."""
    cols = _present(results, metrics)
    keys = list(dict.fromkeys((r["threat"], r["norm"], r["level"]) for r in results.rows))
    rows = [(t, n or "", lvl, *(_get(results, t, m, lvl, n) for m in cols)) for t, n, lvl in keys]
    return Table(("threat", "norm", "level", *cols), tuple(rows), ("text", "text", "level", *_values(cols)))


def summary_table(runs: Sequence[tuple[str, Results]]) -> Table:
    """One row per ``(name, results)``: clean accuracy, majority rate, AUC-robustness and mean accuracy per threat."""
    threats = list(dict.fromkeys((t["threat"], t["norm"]) for _, res in runs for t in res.summary.get("threats", [])))
    header = ["run", "clean acc", "majority"]
    for t, n in threats:
        tag = f"{t} {n}" if n else t
        header += [f"{tag} AUC-rob", f"{tag} mean acc"]
    rows = []
    for name, res in runs:
        by_key = {(t["threat"], t["norm"]): t for t in res.summary.get("threats", [])}
        row: list[Any] = [name, res.summary.get("clean_accuracy"), res.summary.get("majority_rate")]
        for key in threats:
            entry = by_key.get(key, {})
            row += [entry.get("auc_robustness"), entry.get("mean_accuracy")]
        rows.append(tuple(row))
    return Table(tuple(header), tuple(rows), ("text", *_values(header[1:])), "robustness summary")
