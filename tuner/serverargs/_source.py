"""Values of SGLang's source read without running it: constants, lists and class attributes
of the wheel's modules, followed across their imports.

Only the shapes flag declarations use are understood (literals, names, ``A + B``, ``list(X)``,
``X.keys()``, class attributes, f-strings); anything else is :class:`Unresolved`, and the
flag table records it as unknown rather than guessing.
"""

from __future__ import annotations

import ast
from functools import cached_property

from tuner._sglang_wheel import SglangWheel, WheelError

__all__ = ["Module", "Unresolved", "module"]


class Unresolved(Exception):
    """An expression whose value cannot be known without running SGLang."""


_BUILTINS: dict[str, object] = {"None": None, "True": True, "False": False}


class Module:
    """One module of the wheel: its top-level names, classes and imports."""

    def __init__(self, wheel: SglangWheel, member: str) -> None:
        self.wheel = wheel
        self.member = member
        self.tree = wheel.module(member)

    @cached_property
    def assigns(self) -> dict[str, ast.expr]:
        found: dict[str, ast.expr] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                if isinstance(node.target, ast.Name):
                    found[node.target.id] = node.value
        return found

    @cached_property
    def classes(self) -> dict[str, ast.ClassDef]:
        return {n.name: n for n in self.tree.body if isinstance(n, ast.ClassDef)}

    @cached_property
    def imports(self) -> dict[str, tuple[str, str]]:
        """``{local name: (module member path, name in it)}`` of ``from X import Y``."""
        found: dict[str, tuple[str, str]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                member = node.module.replace(".", "/") + ".py"
                for alias in node.names:
                    found[alias.asname or alias.name] = (member, alias.name)
        return found

    def imported(self, name: str) -> tuple[Module, str]:
        """The module a name was imported from, and its name there."""
        member, original = self.imports[name]
        try:
            return module(self.wheel, member), original
        except WheelError:
            package = member.removesuffix(".py") + "/__init__.py"
            try:
                return module(self.wheel, package), original
            except WheelError as exc:
                raise Unresolved(f"{name} comes from outside the wheel") from exc

    def class_def(self, name: str) -> tuple[Module, ast.ClassDef]:
        """A class defined here or imported, with the module that defines it."""
        if name in self.classes:
            return self, self.classes[name]
        if name in self.imports:
            module, original = self.imported(name)
            return module.class_def(original)
        raise Unresolved(f"class {name}")

    def value(self, node: ast.expr | None, local: dict[str, ast.expr] | None = None) -> object:
        """The value of an expression of this module (``local``: names of the function)."""
        local = local or {}
        if node is None:
            raise Unresolved("no expression")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.value(e, local) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {self.value(k, local): None for k in node.keys if k is not None}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            number = self.value(node.operand, local)
            if isinstance(number, int | float):
                return -number
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left, local), self.value(node.right, local)
            if isinstance(left, list) and isinstance(right, list):
                return left + right
            if isinstance(left, str) and isinstance(right, str):
                return left + right
        if isinstance(node, ast.JoinedStr):
            return "".join(
                str(v.value) if isinstance(v, ast.Constant) else "{...}" for v in node.values
            )
        if isinstance(node, ast.Name):
            return self._name(node.id, local)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module, cls = self.class_def(node.value.id)
            return module.class_attribute(cls, node.attr)
        if isinstance(node, ast.Call):
            return self._call(node, local)
        raise Unresolved(ast.unparse(node))

    def _name(self, name: str, local: dict[str, ast.expr]) -> object:
        if name in local:
            return self.value(local[name], {k: v for k, v in local.items() if k != name})
        if name in self.assigns:
            return self.value(self.assigns[name])
        if name in self.imports:
            module, original = self.imported(name)
            return module._name(original, {})
        if name in _BUILTINS:
            return _BUILTINS[name]
        raise Unresolved(name)

    def _call(self, node: ast.Call, local: dict[str, ast.expr]) -> object:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "keys" and not node.args:
            return list(self._as_list(self.value(func.value, local)))
        if isinstance(func, ast.Name) and func.id in ("list", "sorted", "set", "tuple"):
            if len(node.args) == 1:
                items = list(self._as_list(self.value(node.args[0], local)))
                return sorted(items, key=str) if func.id == "sorted" else items
        raise Unresolved(ast.unparse(node))

    @staticmethod
    def _as_list(value: object) -> list[object]:
        if isinstance(value, dict):
            return list(value)
        if isinstance(value, list):
            return value
        raise Unresolved(repr(value))

    def class_attribute(self, cls: ast.ClassDef, name: str) -> object:
        """The value assigned to ``name`` in a class body."""
        for node in cls.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                return self.value(node.value)
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
            ):
                return self.value(node.value)
        raise Unresolved(f"{cls.name}.{name}")


_CACHE: dict[tuple[str, str], Module] = {}


def module(wheel: SglangWheel, member: str) -> Module:
    """One parsed module of the wheel, read once per process."""
    key = (str(wheel.path), member)
    if key not in _CACHE:
        _CACHE[key] = Module(wheel, member)
    return _CACHE[key]
