"""Reading a study spec from YAML or JSON, or from an ``inference-autotuner`` task JSON."""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import pydantic
import yaml

from tuner._bounded import first_bound_passed
from tuner._hints import did_you_mean
from tuner.exceptions import SpecError
from tuner.spec._study import StudySpec

__all__ = ["load_spec", "spec_from_dict"]


def load_spec(source: str | Path) -> StudySpec:
    """Read a spec file (YAML or JSON; a prototype task JSON is converted).

    Raises:
        SpecError: the file is missing, unreadable, or the spec is invalid.
    """
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise SpecError(f"cannot read spec file {path}: {e.strerror}; check the path") from e
    except yaml.YAMLError as e:
        raise SpecError(f"{path} is not valid YAML or JSON: {e}") from e
    except RecursionError as e:
        raise SpecError(f"{path} nests too deeply to be a study spec") from e
    return spec_from_dict(data, source=str(path))


def spec_from_dict(data: Any, *, source: str = "spec") -> StudySpec:
    """Validate a spec given as a dict (a prototype task dict is converted first).

    Raises:
        SpecError: listing every bad field as ``path: reason``.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a mapping of fields, not {type(data).__name__}")
    _check_shape(data, source)
    if "task_name" in data or "parameters" in data:
        data = from_prototype_task(data)
    try:
        return StudySpec.model_validate(data)
    except pydantic.ValidationError as e:
        errors = _tidy(e.errors())
        lines = "\n".join(f"  {path}: {reason}" for path, reason in errors)
        raise SpecError(f"{source} is not a valid study spec:\n{lines}", errors) from e


# A spec has hundreds of values, a long one thousands; YAML aliases can make a small file
# stand for billions (or for itself), which nothing downstream should ever walk.
_MAX_VALUES = 200_000
_MAX_DEPTH = 20


def _check_shape(data: Any, source: str) -> None:
    """Refuse data with more values or deeper nesting than a spec can have (visits are
    counted, so an alias repeated or cycling counts each time)."""
    passed = first_bound_passed(data, _members, max_nodes=_MAX_VALUES, max_depth=_MAX_DEPTH)
    if passed == "nodes":
        raise SpecError(
            f"{source} has more than {_MAX_VALUES:,} values (or YAML aliases that repeat "
            "themselves); a study spec is far smaller: write the values out",
            [("spec", f"more than {_MAX_VALUES:,} values")],
        )
    if passed == "depth":
        raise SpecError(
            f"{source} nests deeper than {_MAX_DEPTH} levels; a study spec is far flatter",
            [("spec", f"nested deeper than {_MAX_DEPTH} levels")],
        )


def _members(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, list | tuple):
        return value
    return ()


def _tidy(raw: list[Any]) -> list[tuple[str, str]]:
    """One ``(path, reason)`` per problem: a value that fits no member of a union (a fixed
    flag's bool | int | float | str, a list or a range) gets pydantic's error for each member;
    keep the telling ones ("finite number") over "should be a valid <type>"."""
    described = [(*_describe(err), _is_type_error(err)) for err in raw]
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


def _describe(err: Any) -> tuple[str, str]:
    loc = [str(part) for part in err["loc"]]
    # Drop the union tags pydantic adds (e.g. "twin" in backend.twin.gpu, list[...] in space.x).
    loc = [p for p in loc if not p.startswith(("list[", "RangeSpec", "function-"))]
    loc = [p for p in loc if p not in _UNION_TAGS]  # a scalar's member: fixed.x.float
    if loc[:1] == ["backend"] and len(loc) > 1:
        del loc[1]  # the discriminator tag: backend.twin.gpu is backend.gpu to the user
    message = err["msg"].removeprefix("Value error, ")
    head, sep, rest = message.partition(": ")
    if not loc and sep and head.split(".")[0] in StudySpec.model_fields:
        loc, message = head.split("."), rest  # a cross-field check names its own field
    elif loc and sep and head in _fields_at(loc):
        loc, message = [*loc, head], rest  # a part's check names a field of that part
    path = ".".join(loc) or "spec"
    if err["type"] == "extra_forbidden":
        message = "unknown field" + did_you_mean(loc[-1], _fields_at(loc[:-1]))
    return path, message


def _fields_at(loc: list[str]) -> list[str]:
    model: type[pydantic.BaseModel] | None = StudySpec
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


# --- the earlier prototype's task JSON --------------------------------------------------------

_PROTOTYPE_NAMES = {"mem_frac": "mem_fraction_static", "tp": "tp_size", "dp": "dp_size"}
_PROTOTYPE_STRATEGY = {
    "grid_search": "grid",
    "grid": "grid",
    "random": "random",
    "random_search": "random",
    "bayesian": "bayes",
    "bayes": "bayes",
    "optuna": "bayes",
    "tpe": "bayes",
}


def from_prototype_task(task: dict[str, Any]) -> dict[str, Any]:
    """Convert an ``inference-autotuner`` task dict into this project's spec dict.

    Every field is type-checked on the way, so a malformed task is a ``SpecError`` naming
    the field (its prototype name), never a crash.

    Raises:
        SpecError: a field of the wrong type, or something that has no equivalent here.
    """
    model = _section(task, "model")
    served = model.get("id_or_path") or model.get("name") or "model"
    bench = _section(task, "benchmark")
    opt = _section(task, "optimization")
    strategy = opt.get("strategy", "grid_search")
    if not isinstance(strategy, str) or strategy not in _PROTOTYPE_STRATEGY:
        _bad("optimization.strategy",
             f"{strategy!r} is unknown; use one of {', '.join(sorted(_PROTOTYPE_STRATEGY))}")
    mode = task.get("deployment_mode", "ome")
    if mode == "ome":
        backend: dict[str, Any] = {
            "kind": "ome",
            "namespace": model.get("namespace", "autotuner"),
            "base_model": served,
            "runtime": task.get("base_runtime"),
        }
    elif mode in ("local", "docker"):
        backend = {"kind": "local"}
    else:
        _bad("deployment_mode", f"{mode!r} is unknown; use ome, local or docker")
    space = _prototype_space(task)
    if backend["kind"] == "local":  # the prototype ran one server at a time on enough GPUs
        tp = space.get("tp_size", [1])
        if not isinstance(tp, list) or not all(_is_int(v) for v in tp):
            _bad("parameters.tp-size", "give the values as a list of whole numbers")
        backend["gpus"] = max([int(v) for v in tp], default=1)
    levels = bench.get("num_concurrency", [1])
    if not isinstance(levels, list) or not all(_is_int(v) for v in levels):
        _bad("benchmark.num_concurrency", "give the levels as a list of whole numbers")
    minutes = _number(bench, "benchmark.max_time_per_iteration", 10)
    spec: dict[str, Any] = {
        "name": _slug(str(task.get("task_name", "prototype-task"))),
        "description": task.get("description", ""),
        "model": {"name": served, "tokenizer": bench.get("model_tokenizer")},
        "backend": backend,
        "space": space,
        "workload": {
            "scenarios": bench.get("traffic_scenarios", ["D(100,100)"]),
            "concurrency": sorted(set(levels)),
            "max_requests_per_level": bench.get("max_requests_per_iteration", 50),
            "max_seconds_per_level": int(minutes) * 60,
        },
        "objective": _prototype_objective(task),
        "search": {
            "algorithm": _PROTOTYPE_STRATEGY[strategy],
            "max_trials": opt.get("max_iterations"),
        },
        "trial_timeout_s": opt.get("timeout_per_iteration", 3600),
    }
    if strategy.startswith("grid"):
        spec["search"]["max_trials"] = None  # the prototype stopped grids early; we run them whole
    return spec


def _prototype_space(task: dict[str, Any]) -> dict[str, Any]:
    parameters = task.get("parameters") or {}
    if not isinstance(parameters, dict):
        _bad("parameters", "must map each parameter name to {type: choice, values: [...]}")
    space: dict[str, Any] = {}
    for name, values in parameters.items():
        if not isinstance(name, str):
            _bad(f"parameters.{name}", "a parameter name must be text")
        key = name.replace("-", "_")
        key = _PROTOTYPE_NAMES.get(key, key)
        if key in space:
            _bad(f"parameters.{name}",
                 f"names the same flag as another parameter ({key}); keep one of them")
        space[key] = values.get("values") if isinstance(values, dict) else values
    return space


def _prototype_objective(task: dict[str, Any]) -> dict[str, Any]:
    objective = str(_section(task, "optimization").get("objective", "maximize_throughput"))
    slo: dict[str, float] = {}
    prototype_slo = _section(task, "slo")
    latency = _section(prototype_slo, "latency", "slo.latency")
    for pct, bound in latency.items():
        if pct in ("p50", "p90", "p99"):
            where = f"slo.latency.{pct}"
            if "threshold" in _section(latency, pct, where):
                slo[f"e2e_{pct}_ms"] = _number(bound, f"{where}.threshold", 0) * 1000
    ttft = _section(prototype_slo, "ttft", "slo.ttft")
    if "threshold" in ttft:
        slo["ttft_p50_ms"] = _number(ttft, "slo.ttft.threshold", 0) * 1000
    if objective.startswith("minimize"):
        return {"metric": "e2e_p50_ms", "direction": "min", "slo": slo}
    return {"metric": "goodput", "slo": slo}


def _section(parent: dict[str, Any], key: str, path: str | None = None) -> dict[str, Any]:
    """``parent[key]`` as a mapping ({} when absent)."""
    value = parent.get(key) or {}
    if not isinstance(value, dict):
        _bad(path or key, f"must be a mapping of fields, not {type(value).__name__}")
    return value


def _number(parent: dict[str, Any], path: str, default: float) -> float:
    """The number at the last part of ``path`` in ``parent``, finite and not negative."""
    value = parent.get(path.rsplit(".", 1)[-1], default)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        _bad(path, f"must be a number of at least 0, not {value!r}")
    return float(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(path: str, reason: str) -> NoReturn:
    raise SpecError(f"{path}: {reason}", [(path, reason)])


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    slug = "-".join(part for part in slug.split("-") if part)[:40].strip("-")
    return slug if slug and slug[0].isalpha() else f"t-{slug}"[:40] if slug else "prototype-task"
