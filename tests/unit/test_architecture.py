"""The package's shape: data flows one way, and the user's view keeps its fields to itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_tracechain"


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere: at the top, in functions, under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "pytest_tracechain":
                found.update(alias.name for alias in node.names if alias.name.startswith("_"))
            elif node.module.startswith("pytest_tracechain."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pytest_tracechain."))
    found.discard(path.stem)
    return found


def module_graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    return {name: imports_of(path) & modules.keys() for name, path in modules.items()}


def test_no_import_cycle() -> None:
    graph = module_graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_graph_and_origins_import_nothing_of_the_capture() -> None:
    graph = module_graph()
    assert graph["_graph"] == set()
    assert graph["_origins"] == set()
    assert graph["_settings"] == set()
    assert "_capture" not in graph["_state"]
    assert "_state" not in graph["_render"]


def test_only_the_capture_module_reads_the_views_state() -> None:
    readers = sorted(
        path.stem
        for path in PACKAGE.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr == "_state"
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    )
    assert readers == ["_capture"]


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = [
        f"{path.name}: from {node.module} import {alias.name}"
        for path in PACKAGE.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pytest_tracechain.")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert offenders == []


def test_the_plugin_module_imports_only_light_modules_at_start_up() -> None:
    tree = ast.parse((PACKAGE / "plugin.py").read_text(encoding="utf-8"))
    top_level = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pytest_tracechain")
    }
    assert top_level == {"pytest_tracechain._errors", "pytest_tracechain._settings"}
    assert module_graph()["_settings"] == set()
    assert module_graph()["_errors"] == set()
