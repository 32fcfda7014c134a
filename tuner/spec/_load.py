"""Reading a study spec from YAML or JSON, or from an ``inference-autotuner`` task JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NoReturn

from tuner.exceptions import SpecError
from tuner.spec._document import check_shape, read_document, validated
from tuner.spec._study import StudySpec

__all__ = ["load_spec", "spec_from_dict"]


def load_spec(source: str | Path) -> StudySpec:
    """Read a spec file (YAML or JSON; a prototype task JSON is converted).

    Raises:
        SpecError: the file is missing, unreadable, or the spec is invalid.
    """
    path = Path(source)
    data = read_document(path, "a study spec")
    return spec_from_dict(data, source=str(path), base_dir=path.parent)


def _dataset_beside(data: Any, folder: Path) -> Any:
    """The spec with a relative ``workload.dataset.path`` made relative to ``folder`` (the
    spec file's, where ``workload from-log`` writes it; the service's datasets folder), not
    to wherever the tuner was started."""
    workload = data.get("workload") if isinstance(data, dict) else None
    dataset = workload.get("dataset") if isinstance(workload, dict) else None
    path = dataset.get("path") if isinstance(dataset, dict) else None
    if not isinstance(path, str) or not path or Path(path).expanduser().is_absolute():
        return data
    if path.startswith("-"):
        return data  # refused by the spec with its reason
    assert isinstance(workload, dict) and isinstance(dataset, dict)
    dataset = {**dataset, "path": str(folder / path)}
    return {**data, "workload": {**workload, "dataset": dataset}}


def spec_from_dict(
    data: Any, *, source: str = "spec", base_dir: Path | None = None
) -> StudySpec:
    """Validate a spec given as a dict (a prototype task dict is converted first).

    Args:
        base_dir: where a relative ``workload.dataset.path`` lies; default: the working
            directory.

    Raises:
        SpecError: listing every bad field as ``path: reason``.
    """
    check_shape(data, source, "a study spec")
    if "task_name" in data or "parameters" in data:
        data = from_prototype_task(data)
    if base_dir is not None:
        data = _dataset_beside(data, base_dir)
    return validated(StudySpec, data, source, "a study spec")


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
