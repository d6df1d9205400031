"""The package's shape: data flows one way, and the user's view keeps its fields to itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_tracechain"


def modules_in(node: ast.AST) -> set[str]:
    """The package modules an import statement names (none for another statement)."""
    if isinstance(node, ast.ImportFrom) and node.module:
        if node.module == "pytest_tracechain":
            return {alias.name for alias in node.names if alias.name.startswith("_")}
        if node.module.startswith("pytest_tracechain."):
            return {node.module.split(".")[1]}
    elif isinstance(node, ast.Import):
        return {a.name.split(".")[1] for a in node.names if a.name.startswith("pytest_tracechain.")}
    return set()


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere: at the top, in functions, under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        found |= modules_in(node)
    found.discard(path.stem)
    return found


def imported_with(path: Path) -> set[str]:
    """The package modules importing ``path`` imports: not those of its functions or TYPE_CHECKING."""
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        found |= modules_in(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                pending += child.orelse
                continue
            pending.append(child)
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
        and node.attr in ("_state", "_read")  # the view's state, and the same once settled
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


# What a captured test that passes with intact chains imports: plugin.py imports _session at the
# first captured test, the tracechain and tracer fixtures _provider and _capture.
PASSING_TEST_IMPORTS = ("_session", "_provider", "_capture")
# Imported only where such a test never goes: a broken chain (its rules, findings and report), an
# assertion, a tree, --tracechain-export and --tracechain-html, the OTLP receiver.
DEFERRED = frozenset(
    {
        "_assertions",
        "_carriers",
        "_chain",
        "_export",
        "_html",
        "_otlp",
        "_otlp_decode",
        "_outputs",
        "_refs",
        "_tree",
        "_tree_details",
        "_tree_diff",
        "_tree_match",
        "_tree_parse",
        "_tree_table",
        "_tree_text",
    }
)


def test_a_passing_test_imports_none_of_the_deferred_modules() -> None:
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    assert sorted(DEFERRED - modules.keys()) == []  # none renamed or removed
    loaded: set[str] = set()
    pending = list(PASSING_TEST_IMPORTS)
    while pending:
        name = pending.pop()
        if name not in loaded:
            loaded.add(name)
            pending += imported_with(modules[name]) & modules.keys()
    assert sorted(loaded & DEFERRED) == []
    assert "_intact" in loaded  # the quick proof stands in for the chain rules
