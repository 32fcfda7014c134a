"""The front ends use only the tuner's public modules (no ``tuner._x`` / ``tuner.x._y``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("path", sorted([*ROOT.glob("api/*.py"), *ROOT.glob("ui/*.py")]),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_private_tuner_modules(path: Path) -> None:
    private = [name for name in _imports(path) if name.split(".")[0] == "tuner"
               and any(part.startswith("_") for part in name.split(".")[1:])]
    assert not private, f"{path} imports private tuner modules: {private}"
