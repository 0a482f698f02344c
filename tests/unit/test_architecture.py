"""The layering holds: no import cycles, no Airflow in the core or the models, no plugin reaching into the
CLI, and no module too long to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "hyperai_provider"
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return modules


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of the package ``path`` imports, at module level, in functions or for type checking."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles_in_the_package() -> None:
    modules = _modules()
    graph = {name: {m for m in _imports(path, modules) if m in modules and m != name} for name, path in modules.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("layer", ["core", "models"])
def test_the_core_and_the_models_import_nothing_from_airflow_or_the_adapters(layer: str) -> None:
    modules = _modules()
    adapters = ("hyperai_provider.hooks", "hyperai_provider.operators", "hyperai_provider.triggers",
                "hyperai_provider.plugins", "hyperai_provider.cli", "hyperai_provider.notifications",
                "hyperai_provider.links")  # fmt: skip
    offenders = {
        name: sorted(m for m in _imports(path, modules) if m.split(".")[0] == "airflow" or m.startswith(adapters))
        for name, path in modules.items()
        if name.startswith(f"hyperai_provider.{layer}")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_web_ui_does_not_import_the_cli() -> None:
    modules = _modules()
    offenders = [
        name
        for name, path in modules.items()
        if name.startswith("hyperai_provider.plugins")
        and any(m.startswith("hyperai_provider.cli") for m in _imports(path, modules))
    ]
    assert offenders == []


def test_no_module_is_too_long_to_read() -> None:
    lengths = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
