"""No import circles among medrobust's modules, function-level and ``TYPE_CHECKING`` imports included.

An edge A → B exists when A's source imports B anywhere (``from pkg.a import b`` points at ``pkg/a/b.py`` when that
module exists, else at ``pkg/a``); circles are the strongly connected components (Tarjan) of more than one module.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "medrobust"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (anywhere in its source)."""
    files = {_module(p): p for p in package_dir.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                stem = node.module or ""
                if node.level:
                    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    stem = ".".join(base[: len(base) - (node.level - 1)] + ([stem] if stem else []))
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in files else stem for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_the_checker_finds_a_function_level_circle() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert circles(graph) == [frozenset({"p.a", "p.b", "p.c"})]
    assert circles({"p.a": {"p.b"}, "p.b": set()}) == []


def test_the_graph_counts_imports_inside_functions_and_type_checking_blocks() -> None:
    graph = import_graph(SRC / PACKAGE)
    assert "medrobust.reporting.plots" in graph["medrobust.reporting.outputs"]  # imported inside a function
    assert "medrobust.evaluation.results" in graph["medrobust.reporting.tables"]


def test_no_import_circles() -> None:
    found = circles(import_graph(SRC / PACKAGE))
    assert not found, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)
