"""The package's three layers: the numerics (zlnotes), the sweep engine (zlnotes.sweep) and
the book (zlnotes.book). Dependencies point one way, book -> sweep -> numerics, with no cycles,
and importing the numerics or the engine loads nothing of the Jupyter or Sphinx stack."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "zlnotes"
RANK = {"numerics": 0, "sweep": 1, "book": 2}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("sweep", "book") else "numerics"


def _imports(module: str) -> set[str]:
    """Every zlnotes module `module` imports, at module level or inside functions."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for name in candidates:
            if name in MODULES and name != module:
                found.add(name)
                break
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_the_three_layers_exist():
    assert {_layer(m) for m in MODULES} == set(RANK)
    assert "zlnotes.book.cli" in MODULES and "zlnotes.sweep.executors" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependencies_point_one_way(module):
    """A module imports only from its own layer or a lower one: book -> sweep -> numerics."""
    upward = sorted(t for t in GRAPH[module] if RANK[_layer(t)] > RANK[_layer(module)])
    assert not upward, f"{module} ({_layer(module)}) imports {upward}"


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in GRAPH[m]:
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("module", ["zlnotes", "zlnotes.sweep"])
def test_importing_numerics_or_engine_loads_no_jupyter_sphinx_or_dask(module):
    heavy = ("nbformat", "nbclient", "papermill", "nbconvert", "ipykernel", "sphinx", "dask", "distributed")
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"import {module} loads {loaded}"
