"""The flag table of one SGLang version, read from ``sglang/srt/server_args.py`` in its wheel.

SGLang declares its ``launch_server`` flags in two styles, both read here with ``ast``:
``parser.add_argument(...)`` calls in ``ServerArgs.add_cli_args`` (0.5.5), and annotated
fields ``name: A[T, Arg(...)] = default`` of the namespace classes that
``add_cli_args_from_dataclass`` registers (later 0.5.x), plus the few flags still added by
hand there. Nothing of SGLang is imported or copied: each flag becomes one row of data.
"""

from __future__ import annotations

import ast
from typing import Any

from tuner._sglang_wheel import SglangWheel
from tuner.serverargs._source import Module, Unresolved, module

__all__ = ["SERVER_ARGS", "build_table"]

SERVER_ARGS = "sglang/srt/server_args.py"
_KINDS = {"int": "int", "float": "float", "str": "str", "bool": "bool"}


def build_table(wheel: SglangWheel) -> dict[str, Any]:
    """Every launch_server flag of the wheel's SGLang, with the wheel's provenance.

    Returns:
        ``{"sglang_version", "wheel", "wheel_sha256", "source", "flags": [row, ...]}``; a row
        is ``{name, options, type, default, choices, nargs, action, help}``: ``name`` is the
        ServerArgs field (argparse's dest, renamed as ``from_cli_args`` does), ``type`` one of
        int/float/str/bool, and ``None`` stands for what the source does not say (or says
        only at run time).
    """
    source = module(wheel, SERVER_ARGS)
    _, server_args = source.class_def("ServerArgs")
    add_cli = next(
        node
        for node in server_args.body
        if isinstance(node, ast.FunctionDef) and node.name == "add_cli_args"
    )
    fields = _namespace_fields(source) if _calls(add_cli, "add_cli_args_from_dataclass") else {}
    rows = [row for row in fields.values() if row is not None]
    local: dict[str, ast.expr] = {}
    for node in _in_order(add_cli.body):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            local[node.targets[0].id] = node.value
        elif isinstance(node, ast.Expr) and _is_add_argument(node.value):
            assert isinstance(node.value, ast.Call)
            rows.append(_from_call(source, node.value, local, fields))
    renamed = _renames(server_args)
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        row["name"] = renamed.get(row["name"], row["name"])
        seen.setdefault(row["name"], row)  # argparse keeps the first default of a dest
    return {
        "sglang_version": wheel.version,
        "wheel": wheel.path.name,
        "wheel_sha256": wheel.sha256,
        "source": SERVER_ARGS,
        "flags": list(seen.values()),
    }


def _renames(server_args: ast.ClassDef) -> dict[str, str]:
    """``{argparse dest: ServerArgs field}`` of the ``args.tp_size = args.tensor_parallel_size``
    lines of ``from_cli_args``: the field is the name users and ``ServerArgs`` know."""
    renames: dict[str, str] = {}
    for node in server_args.body:
        if isinstance(node, ast.FunctionDef) and node.name == "from_cli_args":
            for line in ast.walk(node):
                if (
                    isinstance(line, ast.Assign)
                    and isinstance(line.targets[0], ast.Attribute)
                    and isinstance(line.value, ast.Attribute)
                ):
                    renames[line.value.attr] = line.targets[0].attr
    return renames


def _in_order(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements of a function body, those inside ``if``/``for``/``with`` included."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.With):
            out += _in_order(node.body)
        elif isinstance(node, ast.If | ast.For):
            out += _in_order(node.body) + _in_order(node.orelse)
    return out


def _calls(function: ast.FunctionDef, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        for n in ast.walk(function)
    )


def _is_add_argument(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
    )


def _safe(source: Module, node: ast.expr | None, local: dict[str, ast.expr]) -> Any:
    try:
        return source.value(node, local)
    except Unresolved:
        return None


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text or "").strip().splitlines()]
    return lines[0][:300] if lines else ""


def _row(
    options: list[str],
    dest: str | None,
    kind: str,
    default: Any,
    choices: Any,
    nargs: str | None,
    action: str | None,
    help_text: object,
) -> dict[str, Any]:
    name = dest or next((o for o in options if o.startswith("--")), options[0]).lstrip("-")
    return {
        "name": name.replace("-", "_"),
        "options": options,
        "type": kind,
        "default": default if kind != "bool" or default is not None else False,
        "choices": list(choices) if isinstance(choices, list) else None,
        "nargs": nargs,
        "action": action,
        "help": _first_line(help_text),
    }


def _from_call(
    source: Module,
    call: ast.Call,
    local: dict[str, ast.expr],
    fields: dict[str, dict[str, Any] | None],
) -> dict[str, Any]:
    options = [str(source.value(a)) for a in call.args]
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    action = kw.get("action")
    action_name = (
        None if action is None
        else str(_safe(source, action, local) or ast.unparse(action))
    )
    type_name = ast.unparse(kw["type"]) if "type" in kw else "str"
    if action_name is not None and "store_true" in action_name.replace("StoreTrue", "store_true"):
        kind = "bool"
    else:
        kind = _KINDS.get(type_name, "str")
    default_node = kw.get("default")
    if (
        isinstance(default_node, ast.Call)
        and isinstance(default_node.func, ast.Name)
        and default_node.func.id == "_declared_default"
    ):
        declared = fields.get(str(source.value(default_node.args[0])))
        default = declared["default"] if declared else None
    else:
        default = _safe(source, default_node, local)
    return _row(options, _safe(source, kw.get("dest"), local), kind, default,
                _safe(source, kw.get("choices"), local), _safe(source, kw.get("nargs"), local),
                action_name, _safe(source, kw.get("help"), local))


# --- later 0.5.x: flags declared as annotated fields of namespace classes ----------------------


def _namespace_fields(source: Module) -> dict[str, dict[str, Any] | None]:
    """The flag of each field of the classes in ``_INPUT_NAMESPACES`` (None: no CLI flag)."""
    names = source.assigns["_INPUT_NAMESPACES"]
    assert isinstance(names, ast.List | ast.Tuple)
    fields: dict[str, dict[str, Any] | None] = {}
    for name in names.elts:
        assert isinstance(name, ast.Name)
        owner, cls = source.class_def(name.id)
        for node in cls.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                fields[node.target.id] = _from_field(owner, node.target.id, node)
    return fields


def _from_field(owner: Module, name: str, node: ast.AnnAssign) -> dict[str, Any] | None:
    annotation = node.annotation
    if not (isinstance(annotation, ast.Subscript) and isinstance(annotation.slice, ast.Tuple)):
        return None  # no A[T, ...]: not a CLI flag
    inner, *meta = annotation.slice.elts
    arg: dict[str, ast.expr] = {}
    help_node: ast.expr | None = None
    for item in meta:
        if isinstance(item, ast.Call) and ast.unparse(item.func) == "Arg":
            arg = {k.arg: k.value for k in item.keywords if k.arg}
            help_node = arg.get("help")
        elif isinstance(item, ast.Constant | ast.JoinedStr | ast.BinOp) and help_node is None:
            help_node = item
    if help_node is None and not arg:
        return None
    if _safe(owner, arg.get("no_cli"), {}) is True:
        return None
    cli_name = _safe(owner, arg.get("cli_name"), {}) or "--" + name.replace("_", "-")
    options = [cli_name, *(_safe(owner, arg.get("aliases"), {}) or [])]
    default = _safe(owner, node.value, {}) if node.value is not None else None
    kind, literal, is_list = _kind(inner)
    choices = _safe(owner, arg.get("choices"), {}) or literal
    nargs = _safe(owner, arg.get("nargs"), {})
    if is_list and "type_parser" not in arg:
        nargs = nargs or "+"
    action = arg.get("action")
    action_name = None if action is None else ast.unparse(action)
    if action_name and "StoreTrue" in action_name:
        kind = "bool"
    row = _row(options, name, kind, default, choices, nargs, action_name,
               _safe(owner, help_node, {}))
    row["name"] = name
    return row


def _kind(node: ast.expr) -> tuple[str, list[Any] | None, bool]:
    """(kind, Literal values or None, is a list) of a field's type annotation."""
    text = ast.unparse(node)
    for wrapper in ("Optional[", "typing.Optional["):
        if text.startswith(wrapper):
            return _kind(ast.parse(text[len(wrapper):-1], mode="eval").body)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
        other = node.right if ast.unparse(node.left) == "None" else node.left
        return _kind(other)
    if text.startswith(("Union[", "typing.Union[")) and text.endswith(", None]"):
        return _kind(ast.parse(text[text.index("[") + 1:-len(", None]")], mode="eval").body)
    if isinstance(node, ast.Subscript):
        head = ast.unparse(node.value).rsplit(".", 1)[-1]
        if head == "Literal":
            values = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            literal = [v.value for v in values if isinstance(v, ast.Constant)]
            first = type(literal[0]).__name__ if literal else "str"
            return _KINDS.get(first, "str"), literal, False
        if head in ("List", "list"):
            kind, _, _ = _kind(node.slice)
            return kind, None, True
    return _KINDS.get(text, "str"), None, False
