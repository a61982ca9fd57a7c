"""`pip install .` without extras satisfies every import statement in `src/medrobust`.

Optional packages (pydicom, nibabel, medmnist) are imported with ``importlib`` where they are used, behind a
one-line error naming the extra; no ``import`` statement may name them, nor any other undeclared package.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "medrobust"
# Import names whose distribution is named differently on PyPI.
DISTRIBUTION = {"yaml": "pyyaml", "PIL": "pillow"}


def core_dependencies() -> set[str]:
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = (re.match(r"[A-Za-z0-9_.-]+", dep) for dep in project["dependencies"])
    return {m.group(0).lower().replace("_", "-") for m in names if m}


def imported_packages(path: Path) -> set[str]:
    """Top-level package of every ``import``/``from`` statement in ``path`` (module level and inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_import_is_the_standard_library_medrobust_or_a_core_dependency() -> None:
    core = core_dependencies()
    undeclared = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for name in imported_packages(path) - set(sys.stdlib_module_names) - {"medrobust", "__future__"}:
            if DISTRIBUTION.get(name, name).lower().replace("_", "-") not in core:
                undeclared.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not undeclared, f"imports not satisfied by a plain `pip install .`: {undeclared}"


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import numpy as np\n\ndef f():\n    from scipy import sparse\n    import yaml.constructor\n")
    assert imported_packages(module) == {"numpy", "scipy", "yaml"}
