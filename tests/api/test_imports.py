"""Imports run one way: tuner <- service <- api, ui <- webapp <- CLI, and only public modules
of another package are imported (no ``tuner._x``, ``service._x``, ``api._x``, ``ui._x``)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = sorted((ROOT / "tuner" / "cli").rglob("*.py"))
PACKAGES = ("tuner", "service", "api", "ui", "webapp")
# Which node may import which; the CLI (tuner/cli/) is a node of its own, since it is the
# one caller of webapp, which builds on the library.
ALLOWED = {
    "tuner": set(),
    "service": {"tuner"},
    "api": {"service", "tuner"},
    "ui": {"service", "tuner"},
    "webapp": {"api", "service", "tuner", "ui"},
    "cli": {"tuner", "webapp"},
}


def _imports(path: Path) -> list[str]:
    """Every absolute import of a file, lazy ones included, as dotted names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _node(name: str) -> str | None:
    """The graph node of an imported name, or None for a module outside the project's."""
    if name == "tuner.cli" or name.startswith("tuner.cli."):
        return "cli"
    top = name.split(".")[0]
    return top if top in PACKAGES else None


def _files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if p not in CLI)


def _deps(paths: list[Path]) -> set[str]:
    return {node for path in paths for name in _imports(path) if (node := _node(name))}


def _graph() -> dict[str, set[str]]:
    """Node -> the nodes its files import."""
    graph = {package: _deps(_files(package)) - {package} for package in PACKAGES}
    graph["cli"] = _deps(CLI) - {"cli"}
    return graph


def test_the_import_graph_has_no_cycles() -> None:
    graph = _graph()
    order = list(graphlib.TopologicalSorter(graph).static_order())  # CycleError if any
    assert order.index("tuner") < order.index("service") < order.index("webapp")
    wrong = {node: sorted(deps - ALLOWED[node]) for node, deps in graph.items()
             if deps - ALLOWED[node]}
    assert not wrong, f"imports against the layering: {wrong}"


def test_api_and_ui_import_the_service_not_each_other() -> None:
    graph = _graph()
    assert "service" in graph["api"] and "service" in graph["ui"]
    assert "ui" not in graph["api"] and "api" not in graph["ui"]


def test_the_service_has_no_web_code() -> None:
    web = ("fastapi", "starlette", "nicegui", "uvicorn", "sse_starlette")
    found = [(path.name, name) for path in _files("service") for name in _imports(path)
             if name.split(".")[0] in web]
    assert not found


@pytest.mark.parametrize("path", [*(p for pkg in PACKAGES[1:] for p in _files(pkg)), *CLI],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_private_modules_of_other_packages(path: Path) -> None:
    # The CLI is a front end: the library's private modules are not its own.
    own = "cli" if path in CLI else path.relative_to(ROOT).parts[0]
    private = [name for name in _imports(path) if _node(name) not in (None, own)
               and any(part.startswith("_") for part in name.split(".")[1:])]
    assert not private, f"{path} imports private modules: {private}"
