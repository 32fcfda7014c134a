"""The new-study form's model: a spec as editable fields and back, with no page code."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tuner import serverargs
from tuner.backends import BACKENDS
from tuner.exceptions import SpecError
from tuner.spec import SEARCH_ALGORITHMS, StudySpec, spec_from_dict

__all__ = ["ALGORITHMS", "FLAG_NAMES", "KINDS", "QUICKSTART", "SLO_FIELDS", "SpecForm",
           "as_text", "quickstart_text"]

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"

# Used when examples/quickstart.yaml is not there (an installed package without the examples).
_FALLBACK: dict[str, Any] = {
    "name": "quickstart",
    "model": {"name": "Llama-3.1-8B-Instruct"},
    "backend": {"kind": "twin", "gpu": "H100", "gpus": 2, "time_scale": 10.0},
    "space": {"tp_size": [1, 2], "mem_fraction_static": [0.8, 0.9]},
    "workload": {"scenarios": ["D(512,128)"], "concurrency": [4, 16],
                 "max_requests_per_level": 40, "max_seconds_per_level": 60},
    "objective": {"metric": "goodput", "per_gpu": True,
                  "slo": {"ttft_p99_ms": 2000, "tpot_p99_ms": 100}},
    "search": {"algorithm": "grid"},
}

# The choices come from the registries, so a new backend or searcher shows up here by itself.
KINDS = sorted(BACKENDS)
ALGORITHMS = list(SEARCH_ALGORITHMS)

# What the flag field completes: every flag of SGLang's table (the twin's version) a spec
# may set.
FLAG_NAMES = sorted(set(serverargs.table().flags) - serverargs.MANAGED)

SLO_FIELDS = {"ttft_p99_ms": "TTFT p99 ≤ (ms)", "tpot_p90_ms": "TPOT p90 ≤ (ms)",
              "tpot_p99_ms": "TPOT p99 ≤ (ms)",
               "e2e_p99_ms": "E2E p99 ≤ (ms)", "error_rate": "Error rate ≤"}


def quickstart_text() -> str:
    """The YAML the form starts from: ``examples/quickstart.yaml``, or a built-in twin study."""
    try:
        return QUICKSTART.read_text()
    except OSError:
        return yaml.safe_dump(_FALLBACK, sort_keys=False)


def _scalar(token: str) -> Any:
    token = token.strip()
    try:
        return yaml.safe_load(token) if token else token
    except yaml.YAMLError:
        return token


def _number(value: Any) -> Any:
    """A form number as int when whole (ui.number gives floats), None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses: "D(1,2), N(1,2)/(3,4)" is two items."""
    items, depth, current = [], 0, ""
    for char in as_text(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        items.append(current.strip())
    return items


def as_text(value: Any) -> str:
    """A text field's value, stripped ("" when cleared)."""
    return str(value if value is not None else "").strip()


def _text(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, list) else str(values or "")


class SpecForm:
    """Form state for one spec; :meth:`to_dict` gives the spec dict the API takes.

    Fields the form does not show (fixed flags, constraints, other SLO bounds, timeouts) are
    kept from the spec it was loaded from, so nothing is lost between form and YAML.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.base: dict[str, Any] = {}
        self.f: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []
        self.load(data)

    def load(self, data: dict[str, Any]) -> None:
        """Fill the form from a spec dict (need not be valid)."""
        self.base = copy.deepcopy(data)
        model = data.get("model") or {}
        backend = data.get("backend") or {}
        workload = data.get("workload") or {}
        obj = data.get("objective") or {}
        slo = obj.get("slo") or {}
        search = data.get("search") or {}
        self.f.clear()
        self.f.update({
            "name": data.get("name", ""), "description": data.get("description", ""),
            "model_name": model.get("name", ""), "model_tokenizer": model.get("tokenizer") or "",
            "backend_kind": backend.get("kind", "twin"), "backend_gpu": backend.get("gpu", "H100"),
            "backend_gpus": backend.get("gpus", 1),
            "backend_time_scale": backend.get("time_scale", 1.0),
            "ome_namespace": backend.get("namespace", "autotuner"),
            "ome_base_model": backend.get("base_model", ""),
            "ome_runtime": backend.get("runtime", ""),
            "scenarios": _text(workload.get("scenarios", ["D(1024,256)"])),
            "concurrency": _text(workload.get("concurrency", [8, 32, 64])),
            "max_requests": workload.get("max_requests_per_level", 200),
            "max_seconds": workload.get("max_seconds_per_level", 60),
            "metric": obj.get("metric", "goodput"),
            "throughput": obj.get("throughput", "output"),
            "per_gpu": bool(obj.get("per_gpu", False)),
            "direction": obj.get("direction") or "auto",
            "algorithm": search.get("algorithm", "bayes"),
            "max_trials": search.get("max_trials"), "seed": search.get("seed", 0),
            "max_concurrent": search.get("max_concurrent"),
        })
        for key in SLO_FIELDS:
            self.f[f"slo_{key}"] = slo.get(key, 0.01 if key == "error_rate" else None)
        self.rows[:] = [self._row(name, spec) for name, spec in (data.get("space") or {}).items()]

    @staticmethod
    def _row(name: str, spec: Any) -> dict[str, Any]:
        if isinstance(spec, dict):
            return {"name": name, "kind": "range", "values": "", "low": spec.get("low"),
                    "high": spec.get("high"), "log": bool(spec.get("log", False)),
                    "int": spec.get("type") == "int" or (
                        isinstance(spec.get("low"), int) and isinstance(spec.get("high"), int)
                        and spec.get("type") != "float"),
                    "step": spec.get("step")}
        return {"name": name, "kind": "values", "values": _text(spec), "low": None,
                "high": None, "log": False, "int": False, "step": None}

    def add_row(self) -> None:
        """Add an empty search-space row."""
        self.rows.append({"name": "", "kind": "values", "values": "", "low": None,
                          "high": None, "log": False, "int": False, "step": None})

    def to_dict(self) -> dict[str, Any]:
        """The spec dict the form describes (validate it with ``spec_from_dict``)."""
        f, base = self.f, copy.deepcopy(self.base)
        data: dict[str, Any] = {k: v for k, v in base.items()}
        data["name"] = as_text(f["name"])
        if f["description"] or "description" in base:
            data["description"] = f["description"] or ""
        model = dict(base.get("model") or {})
        model["name"] = as_text(f["model_name"])
        model["tokenizer"] = as_text(f["model_tokenizer"]) or None
        if model["tokenizer"] is None and "tokenizer" not in (base.get("model") or {}):
            del model["tokenizer"]
        data["model"] = model
        data["backend"] = self._backend(base.get("backend") or {})
        space: dict[str, Any] = {}
        for row in self.rows:
            name = as_text(row["name"])
            if not name:
                continue
            if row["kind"] == "range":
                rng: dict[str, Any] = {"low": _number(row["low"]), "high": _number(row["high"])}
                if row["log"]:
                    rng["log"] = True
                rng["type"] = "int" if row["int"] else "float"
                if _number(row.get("step")) is not None:
                    rng["step"] = _number(row["step"])
                space[name] = rng
            else:
                space[name] = [_scalar(v) for v in _split(row["values"])]
        data["space"] = space
        workload = dict(base.get("workload") or {})
        workload["scenarios"] = _split(f["scenarios"])
        workload["concurrency"] = [_scalar(v) for v in _split(f["concurrency"])]
        workload["max_requests_per_level"] = _number(f["max_requests"])
        workload["max_seconds_per_level"] = _number(f["max_seconds"])
        data["workload"] = {k: v for k, v in workload.items() if v is not None}
        obj = dict(base.get("objective") or {})
        obj.update(metric=f["metric"], throughput=f["throughput"], per_gpu=bool(f["per_gpu"]))
        if f["direction"] in ("max", "min"):
            obj["direction"] = f["direction"]
        else:
            obj.pop("direction", None)
        slo = dict(obj.get("slo") or {})
        for key in SLO_FIELDS:
            value = _number(f[f"slo_{key}"])
            if value is None:
                slo.pop(key, None)
            else:
                slo[key] = value
        obj["slo"] = slo
        data["objective"] = obj
        search = dict(base.get("search") or {})
        search["algorithm"] = f["algorithm"]
        for key in ("max_trials", "seed", "max_concurrent"):
            value = _number(f[key])
            if value is None:
                search.pop(key, None) if key != "seed" else search.update(seed=None)
            else:
                search[key] = value
        data["search"] = search
        return data

    def _backend(self, base: dict[str, Any]) -> dict[str, Any]:
        f = self.f
        kind = f["backend_kind"]
        out = dict(base) if base.get("kind", "twin") == kind else {}
        out["kind"] = kind
        gpus = _number(f["backend_gpus"])
        if kind in ("twin", "estimate"):
            out["gpu"] = f["backend_gpu"]
        if kind == "twin":
            out["time_scale"] = _number(f["backend_time_scale"]) or 1.0
        if kind == "ome":
            out.update(namespace=as_text(f["ome_namespace"]),
                       base_model=as_text(f["ome_base_model"]),
                       runtime=as_text(f["ome_runtime"]))
        if gpus is not None or kind != "ome":
            out["gpus"] = gpus
        else:
            out.pop("gpus", None)
        return out

    def validate(self) -> tuple[StudySpec | None, list[tuple[str, str]]]:
        """The spec, or the ``(path, reason)`` errors that stop it."""
        try:
            return spec_from_dict(self.to_dict(), source="the form"), []
        except SpecError as e:
            return None, e.errors or [("spec", str(e))]
