"""The SGLang flags a spec names, checked against the flag table of its SGLang version.

Works on the spec as data (the raw input, or a valid spec dumped), so that the flag errors
are reported together with the structure errors of the same spec (:func:`merged`) instead of
behind them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from tuner import serverargs
from tuner.spec import _limits

__all__ = ["Problem", "flag_problems", "merged", "spec_version"]

# (location of the bad value, reason), e.g. (("space", "tp_size"), "'two' must be a number").
Problem = tuple[tuple[str, ...], str]


def spec_version(data: Mapping[str, Any]) -> str:
    """The SGLang version a spec (as data) targets: ``backend.sglang_version`` when it names a
    version with a table, else the default; a bad version is the backend's own error."""
    backend = data.get("backend")
    version = backend.get("sglang_version") if isinstance(backend, Mapping) else None
    if isinstance(version, str) and version in serverargs.versions():
        return version
    return serverargs.default_version()


def flag_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Every problem with the flags of ``space``, ``fixed`` and ``search.derived``.

    ``data`` is a spec as data; parts given as models (a ``RangeSpec``, a backend spec) are
    read as their data.
    """
    data = _plain(data)
    version = spec_version(data)
    flags = serverargs.table(version).flags
    sections = {
        "space": data.get("space"),
        "fixed": data.get("fixed"),
    }
    search = data.get("search")
    if isinstance(search, Mapping):
        sections["search.derived"] = search.get("derived")
    problems: list[Problem] = []
    for section, names in sections.items():
        if not isinstance(names, Mapping):
            continue  # the structure error says so
        for name, spec in names.items():
            where = (*section.split("."), str(name))
            if name in serverargs.MANAGED:
                problems.append((where, "set by the backend for every trial"))
            elif name not in flags:
                problems.append((where, f"not a flag of SGLang {version}"
                                        f"{serverargs.suggest(str(name), version)}"))
            elif section == "fixed":
                if problem := serverargs.check_value(name, spec, version):
                    problems.append((where, f"{spec!r} {problem}"))
            elif section == "space":
                problems += [(where, p) for p in _param_problems(name, spec, version)]
            elif flags[name].kind not in ("int", "float"):
                problems.append((where, "only numeric flags can be derived; search it instead"))
    space, fixed = sections["space"], sections["fixed"]
    if isinstance(space, Mapping) and isinstance(fixed, Mapping):
        for name in sorted(space.keys() & fixed.keys()):
            problems.append((("space", name), "also in fixed; keep it in one of them"))
    return problems


def _plain(value: Any) -> Any:
    """Models as dicts, all the way down (a spec built in Python mixes both)."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _param_problems(name: str, spec: object, version: str) -> list[str]:
    flag = serverargs.table(version).flags[name]
    if isinstance(spec, Mapping):  # a range; its own shape is checked by RangeSpec
        if flag.kind not in ("int", "float") or flag.choices is not None:
            return ["a range needs a numeric flag; list the values"]
        low, high = spec.get("low"), spec.get("high")
        is_int = spec.get("type") == "int" or (
            spec.get("type") is None and isinstance(low, int) and isinstance(high, int)
        )
        if flag.kind == "int" and not is_int:
            return ["an integer flag needs an int range"]
        values: list[object] = [v for v in (low, high) if isinstance(v, int | float)]
    elif isinstance(spec, list):
        if not spec:
            return ["give at least one value"]
        if len(spec) > _limits.MAX_LIST_VALUES:
            return [f"{len(spec):,} values; at most {_limits.MAX_LIST_VALUES:,}: use a range "
                    "instead"]
        values = spec
    else:
        return []  # neither a list nor a range: the structure error says so
    return [
        f"{value!r} {problem}"
        for value in values
        if (problem := serverargs.check_value(name, value, version))
    ]


def merged(title: str, errors: list[Any], problems: list[Problem]) -> ValidationError:
    """One validation error holding pydantic's own errors and the flag problems."""
    refused = [tuple(str(p) for p in e["loc"]) for e in errors]
    details = [
        InitErrorDetails(
            type=PydanticCustomError(e["type"], "{msg}", {"msg": e["msg"]}),
            loc=e["loc"],
            input=e.get("input"),
        )
        for e in errors
    ]
    details += [
        InitErrorDetails(
            type=PydanticCustomError("flag_error", "{msg}", {"msg": reason}), loc=loc, input=None
        )
        for loc, reason in problems
        # A value pydantic refused already has its message.
        if not any(seen[: len(loc)] == loc for seen in refused)
    ]
    return ValidationError.from_exception_data(title, details)
