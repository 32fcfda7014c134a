"""Reading any document the tuner takes (a study spec, a plan): YAML or JSON from a file,
bounded in size and depth, validated with every bad field named as ``path: reason``."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from tuner._bounded import first_bound_passed
from tuner._hints import did_you_mean
from tuner.exceptions import SpecError

__all__ = ["check_shape", "read_document", "validated"]

Model = TypeVar("Model", bound=pydantic.BaseModel)


def read_document(path: Path, what: str) -> Any:
    """The YAML or JSON data of the file at ``path``; ``what`` (``a study spec``) names it.

    Raises:
        SpecError: the file is missing, unreadable, or not YAML/JSON.
    """
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise SpecError(f"cannot read {what} from {path}: {e.strerror}; check the path") from e
    except yaml.YAMLError as e:
        raise SpecError(f"{path} is not valid YAML or JSON: {e}") from e
    except RecursionError as e:
        raise SpecError(f"{path} nests too deeply to be {what}") from e


def validated(model: type[Model], data: Any, source: str, what: str) -> Model:
    """``data`` as a ``model``, after :func:`check_shape`.

    Raises:
        SpecError: listing every bad field as ``path: reason``.
    """
    check_shape(data, source, what)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        errors = _tidy(model, e.errors())
        lines = "\n".join(f"  {path}: {reason}" for path, reason in errors)
        raise SpecError(f"{source} is not {_a_valid(what)}:\n{lines}", errors) from e


# A spec has hundreds of values, a long one thousands; YAML aliases can make a small file
# stand for billions (or for itself), which nothing downstream should ever walk.
_MAX_VALUES = 200_000
_MAX_DEPTH = 20


def check_shape(data: Any, source: str, what: str) -> None:
    """Refuse data that is not a mapping, or has more values or deeper nesting than a spec
    can have (visits are counted, so an alias repeated or cycling counts each time).

    Raises:
        SpecError: naming the problem.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source}: {what} must be a mapping of fields, not "
                        f"{type(data).__name__}")
    passed = first_bound_passed(data, _members, max_nodes=_MAX_VALUES, max_depth=_MAX_DEPTH)
    if passed == "nodes":
        raise SpecError(
            f"{source} has more than {_MAX_VALUES:,} values (or YAML aliases that repeat "
            f"themselves); {what} is far smaller: write the values out",
            [("spec", f"more than {_MAX_VALUES:,} values")],
        )
    if passed == "depth":
        raise SpecError(
            f"{source} nests deeper than {_MAX_DEPTH} levels; {what} is far flatter",
            [("spec", f"nested deeper than {_MAX_DEPTH} levels")],
        )


def _a_valid(what: str) -> str:
    """``a study spec`` -> ``a valid study spec``."""
    article, _, noun = what.partition(" ")
    return f"{article} valid {noun}"


def _members(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, list | tuple):
        return value
    return ()


def _tidy(root: type[pydantic.BaseModel], raw: list[Any]) -> list[tuple[str, str]]:
    """One ``(path, reason)`` per problem: a value that fits no member of a union (a fixed
    flag's bool | int | float | str, a list or a range) gets pydantic's error for each member;
    keep the telling ones ("finite number") over "should be a valid <type>"."""
    described = [(*_describe(root, err), _is_type_error(err)) for err in raw]
    telling = {path for path, _, is_type in described if not is_type}
    out: list[tuple[str, str]] = []
    for path, reason, is_type in described:
        deeper = any(t.startswith(f"{path}.") for t in telling)
        if is_type and (path in telling or deeper):
            continue
        if (path, reason) not in out:
            out.append((path, reason))
    return out


def _is_type_error(err: Any) -> bool:
    kind = str(err["type"])
    return kind.endswith("_type") or kind in ("model_attributes_type", "is_instance_of")


_UNION_TAGS = ("bool", "int", "float", "str")


def _describe(root: type[pydantic.BaseModel], err: Any) -> tuple[str, str]:
    loc = [str(part) for part in err["loc"]]
    # Drop the union tags pydantic adds (e.g. "twin" in backend.twin.gpu, list[...] in space.x).
    loc = [p for p in loc if not p.startswith(("list[", "RangeSpec", "function-"))]
    loc = [p for p in loc if p not in _UNION_TAGS]  # a scalar's member: fixed.x.float
    if loc[:1] == ["backend"] and len(loc) > 1:
        del loc[1]  # the discriminator tag: backend.twin.gpu is backend.gpu to the user
    message = err["msg"].removeprefix("Value error, ")
    head, sep, rest = message.partition(": ")
    if not loc and sep and head.split(".")[0] in root.model_fields:
        loc, message = head.split("."), rest  # a cross-field check names its own field
    elif loc and sep and head in _fields_at(root, loc):
        loc, message = [*loc, head], rest  # a part's check names a field of that part
    path = ".".join(loc) or "spec"
    if err["type"] == "extra_forbidden":
        message = "unknown field" + did_you_mean(loc[-1], _fields_at(root, loc[:-1]))
    return path, message


def _fields_at(root: type[pydantic.BaseModel], loc: list[str]) -> list[str]:
    model: type[pydantic.BaseModel] | None = root
    for part in loc:
        field = model.model_fields.get(part) if model else None
        annotation = getattr(field, "annotation", None)
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)
            else None
        )
        if model is None:
            from tuner.spec._backends import BackendSpec  # a union: look in every member

            members = typing.get_args(typing.get_args(BackendSpec)[0])
            return sorted({name for m in members for name in m.model_fields})
    return list(model.model_fields) if model else []


