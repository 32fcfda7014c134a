"""Reading a study spec from YAML or JSON, or from an ``inference-autotuner`` task JSON."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pydantic
import yaml

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
    return spec_from_dict(data, source=str(path))


def spec_from_dict(data: Any, *, source: str = "spec") -> StudySpec:
    """Validate a spec given as a dict (a prototype task dict is converted first).

    Raises:
        SpecError: listing every bad field as ``path: reason``.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a mapping of fields, not {type(data).__name__}")
    if "task_name" in data or "parameters" in data:
        data = from_prototype_task(data)
    try:
        return StudySpec.model_validate(data)
    except pydantic.ValidationError as e:
        errors = [_describe(err) for err in e.errors()]
        lines = "\n".join(f"  {path}: {reason}" for path, reason in errors)
        raise SpecError(f"{source} is not a valid study spec:\n{lines}", errors) from e


def _describe(err: Any) -> tuple[str, str]:
    loc = [str(part) for part in err["loc"]]
    # Drop the union tags pydantic adds (e.g. "twin" in backend.twin.gpu, list[...] in space.x).
    loc = [p for p in loc if not p.startswith(("list[", "RangeSpec", "function-"))]
    if loc[:1] == ["backend"] and len(loc) > 1:
        del loc[1]  # the discriminator tag: backend.twin.gpu is backend.gpu to the user
    message = err["msg"].removeprefix("Value error, ")
    head, sep, rest = message.partition(": ")
    if not loc and sep and head.split(".")[0] in StudySpec.model_fields:
        loc, message = head.split("."), rest  # a cross-field check names its own field
    path = ".".join(loc) or "spec"
    if err["type"] == "extra_forbidden":
        message = "unknown field" + _did_you_mean(err, loc)
    return path, message


def _did_you_mean(err: Any, loc: list[str]) -> str:
    known = _fields_at(loc[:-1])
    close = difflib.get_close_matches(loc[-1], known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


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
            from tuner.spec import _parts  # the backend union: look in every member

            members = [
                _parts.TwinBackendSpec,
                _parts.EstimateBackendSpec,
                _parts.LocalBackendSpec,
                _parts.OmeBackendSpec,
            ]
            return sorted({name for m in members for name in m.model_fields})  # type: ignore[attr-defined]
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

    Raises:
        SpecError: when the task uses something that has no equivalent here.
    """
    model = task.get("model") or {}
    served = model.get("id_or_path") or model.get("name") or "model"
    bench = task.get("benchmark") or {}
    opt = task.get("optimization") or {}
    strategy = str(opt.get("strategy", "grid_search"))
    if strategy not in _PROTOTYPE_STRATEGY:
        raise SpecError(
            f"optimization.strategy: '{strategy}' is unknown; "
            f"use one of {', '.join(sorted(_PROTOTYPE_STRATEGY))}"
        )
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
        raise SpecError(f"deployment_mode: '{mode}' is unknown; use ome, local or docker")
    space: dict[str, Any] = {}
    for name, values in (task.get("parameters") or {}).items():
        key = name.replace("-", "_")
        key = _PROTOTYPE_NAMES.get(key, key)
        if key in space:
            raise SpecError(
                f"parameters.{name}: names the same flag as another parameter "
                f"({key}); keep one of them"
            )
        space[key] = values.get("values") if isinstance(values, dict) else values
    if backend["kind"] == "local":  # the prototype ran one server at a time on enough GPUs
        backend["gpus"] = max([int(v) for v in space.get("tp_size", [1])], default=1)
    spec: dict[str, Any] = {
        "name": _slug(str(task.get("task_name", "prototype-task"))),
        "description": task.get("description", ""),
        "model": {"name": served, "tokenizer": bench.get("model_tokenizer")},
        "backend": backend,
        "space": space,
        "workload": {
            "scenarios": bench.get("traffic_scenarios", ["D(100,100)"]),
            "concurrency": sorted(set(bench.get("num_concurrency", [1]))),
            "max_requests_per_level": bench.get("max_requests_per_iteration", 50),
            "max_seconds_per_level": int(bench.get("max_time_per_iteration", 10)) * 60,
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


def _prototype_objective(task: dict[str, Any]) -> dict[str, Any]:
    objective = str((task.get("optimization") or {}).get("objective", "maximize_throughput"))
    slo: dict[str, float] = {}
    prototype_slo = task.get("slo") or {}
    for pct, bound in (prototype_slo.get("latency") or {}).items():
        if pct in ("p50", "p90", "p99") and "threshold" in bound:
            slo[f"e2e_{pct}_ms"] = float(bound["threshold"]) * 1000
    if "threshold" in (prototype_slo.get("ttft") or {}):
        slo["ttft_p50_ms"] = float(prototype_slo["ttft"]["threshold"]) * 1000
    if objective.startswith("minimize"):
        return {"metric": "e2e_p50_ms", "direction": "min", "slo": slo}
    return {"metric": "goodput", "slo": slo}


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    slug = "-".join(part for part in slug.split("-") if part)[:40].strip("-")
    return slug if slug and slug[0].isalpha() else f"t-{slug}"[:40] if slug else "prototype-task"
