"""The plan spec: model, workload with a target load, SLO, candidate GPUs, prices and flags."""

from __future__ import annotations

import math
from typing import Any

import pydantic
from pydantic import Field, field_validator, model_validator

import twin
from tuner.prices import default_prices
from tuner.spec import SLO, BackendSpec, ModelSpec, TwinBackendSpec, WorkloadSpec
from tuner.spec._base import GpuType, Part
from tuner.spec._flags import flag_problems

__all__ = ["GpuSearch", "PlanSpec", "PlanWorkload", "VerifySpec"]

# Most estimates a plan may take, and most requests they may simulate: 20,000 estimates of
# the default 300 requests, about 4 ms each on one core of the 2-core box, so a minute and a
# half (benchmarks/plan_speed.py); the API runs plans while the client waits. Requests are
# bounded too, since an estimate's cost grows with workload.max_requests.
MAX_ESTIMATES = 20_000
MAX_SIMULATED_REQUESTS = MAX_ESTIMATES * 300
# The planner owns the layout: these flags are what it searches, never the user's space.
_LAYOUT_FLAGS = ("tp_size", "dp_size", "pp_size")


class PlanWorkload(Part):
    """The traffic to serve: scenarios and one target load (a request rate or a user count)."""

    scenarios: list[str] = Field(
        default_factory=lambda: ["D(1024,256)"],
        min_length=1,
        max_length=8,
        description="genai-bench traffic scenarios, e.g. D(1024,256); each must meet the SLO "
        "at the full target load.",
    )
    request_rate: float | None = Field(
        None, gt=0, le=100_000, description="Target load: Poisson arrivals, requests/s."
    )
    users: int | None = Field(
        None, ge=1, le=1_000_000, description="Target load: concurrent closed-loop users."
    )
    max_requests: int = Field(
        300, ge=16, le=10_000, description="Requests each replica's estimate simulates."
    )
    spawn_rate: int | None = Field(
        None, ge=1, le=100_000,
        description="With users: users started per second (genai-bench's --spawn-rate; "
        "locust starts floor(rate) at a time); null: all at once, as genai-bench starts them.",
    )

    @field_validator("scenarios")
    @classmethod
    def _scenarios_parse(cls, scenarios: list[str]) -> list[str]:
        # The study spec's own check of scenario strings ('dataset' needs a file: not here).
        if "dataset" in scenarios:
            raise ValueError("'dataset' is not supported by the planner; use D/N/U scenarios")
        try:
            WorkloadSpec(scenarios=scenarios)
        except pydantic.ValidationError as e:
            raise ValueError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return scenarios

    @model_validator(mode="after")
    def _one_target(self) -> PlanWorkload:
        if (self.request_rate is None) == (self.users is None):
            raise ValueError("give exactly one target load: request_rate (req/s) or users")
        if self.spawn_rate is not None and self.users is None:
            raise ValueError("spawn_rate: starts closed-loop users; give it with users")
        return self


class GpuSearch(Part):
    """The GPU types, tensor-parallel sizes and GPU counts to consider."""

    types: list[GpuType] = Field(min_length=1, description="Candidate GPU types (twin names).")
    tp_sizes: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8],
        min_length=1,
        description="Tensor-parallel sizes of one replica (one SGLang server).",
    )
    max_gpus: int = Field(32, ge=1, le=512, description="Most GPUs a plan may use in all.")

    @field_validator("types", "tp_sizes")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        if len(set(values)) != len(values):
            raise ValueError("list each value once")
        return values

    @field_validator("tp_sizes")
    @classmethod
    def _tp_sizes(cls, sizes: list[int]) -> list[int]:
        if any(size not in (1, 2, 4, 8) for size in sizes):
            raise ValueError("a tensor-parallel size is 1, 2, 4 or 8 (one node)")
        return sorted(sizes)


class VerifySpec(Part):
    """How ``--verify`` measures the short list: one study per layout, one replica each, at
    its share of the target load."""

    backend: BackendSpec = Field(
        default_factory=TwinBackendSpec,
        description="Where the replicas run: the twin (default, on the layout's GPU type and "
        "count) or local/ome (measuring only the layouts of the backend's GPU type).",
    )
    gpu: GpuType | None = Field(
        None,
        description="local/ome: the GPU type the backend's servers run on (only layouts of "
        "that type are measured); the twin simulates each layout's own type.",
    )
    max_requests_per_level: int = Field(
        200, ge=8, le=10_000, description="Requests each measured level sends."
    )

    @model_validator(mode="after")
    def _real_backends_name_their_gpu(self) -> VerifySpec:
        if self.backend.kind not in ("twin", "estimate") and self.gpu is None:
            raise ValueError(
                f"gpu: name the GPU type backend {self.backend.kind} runs on, so that only "
                "layouts of that type are measured against their predictions"
            )
        return self


class PlanSpec(Part):
    """A capacity plan: which GPUs, how many and which flags serve a load within an SLO,
    cheapest first."""

    model: ModelSpec = Field(description="The model to serve.")
    workload: PlanWorkload = Field(description="Scenarios and the target load.")
    slo: SLO = Field(description="Bounds every planned layout must meet (ms).")
    gpus: GpuSearch = Field(description="Candidate GPU types, tp sizes and the GPU budget.")
    prices: dict[str, float] = Field(
        default_factory=dict,
        description="USD per GPU-hour by GPU type; overrides tuner/plan/prices.yaml.",
    )
    space: dict[str, list[Any]] = Field(
        default_factory=lambda: {
            "max_running_requests": [None, 64, 128],
            "chunked_prefill_size": [None, 2048, 8192],
        },
        description="SGLang flags to search, each a list of values (null: SGLang's default).",
    )
    fixed: dict[str, Any] = Field(default_factory=dict, description="Flags every config gets.")
    verify: VerifySpec = Field(
        default_factory=VerifySpec, description="How --verify measures the best layouts."
    )

    @field_validator("prices")
    @classmethod
    def _prices_positive(cls, prices: dict[str, float]) -> dict[str, float]:
        for gpu, price in prices.items():
            if not 0 < price <= 1000:
                raise ValueError(f"{gpu}: a price per GPU-hour is above 0 and at most 1000")
        return prices

    @field_validator("slo")
    @classmethod
    def _slo_bounded(cls, slo: SLO) -> SLO:
        if set(slo.bounds()) <= {"error_rate"}:
            raise ValueError("give at least one latency bound, e.g. ttft_p99_ms")
        return slo

    @model_validator(mode="after")
    def _flags_and_prices(self) -> PlanSpec:
        problems = []
        for section in ("space", "fixed"):
            for name in getattr(self, section):
                if name in _LAYOUT_FLAGS:
                    problems.append(f"{section}.{name}: the planner searches the layout; "
                                    "set gpus.tp_sizes instead")
        # None means "SGLang's default": checked as absent.
        space = {k: [v for v in vs if v is not None] or [None] for k, vs in self.space.items()}
        data = {"space": {k: v for k, v in space.items() if v != [None]}, "fixed": self.fixed}
        problems += [".".join(where) + ": " + why for where, why in flag_problems(data)]
        if self.model.model_path not in twin.CATALOG:
            problems.append(f"model.name: {self.model.model_path} is not in the twin's catalog "
                            f"({', '.join(twin.CATALOG)}); the planner estimates with the twin")
        table = default_prices()
        for gpu in self.gpus.types:
            if gpu not in self.prices and gpu not in table:
                problems.append(f"prices.{gpu}: no default price for {gpu}; give one")
        for gpu in self.prices:
            if gpu not in self.gpus.types:
                problems.append(f"prices.{gpu}: not one of gpus.types")
        estimates = self.most_estimates()
        requests = estimates * self.workload.max_requests
        if estimates > MAX_ESTIMATES or requests > MAX_SIMULATED_REQUESTS:
            problems.append(
                f"gpus: this plan may take up to {estimates:,} estimates (GPU types x tp sizes "
                f"x flag combinations x replica counts x scenarios) of {requests:,} requests in "
                f"all, more than {MAX_ESTIMATES:,} or {MAX_SIMULATED_REQUESTS:,} (about a minute "
                "and a half); narrow gpus.types, gpus.tp_sizes, gpus.max_gpus, space or "
                "workload.max_requests")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def most_estimates(self) -> int:
        """The estimates the plan takes at most (every replica count tried)."""
        combos = math.prod(len(values) for values in self.space.values())
        replicas = sum(self.gpus.max_gpus // tp for tp in self.gpus.tp_sizes)
        return len(self.gpus.types) * combos * replicas * len(self.workload.scenarios)

    def price(self, gpu: str) -> float:
        """USD per GPU-hour of ``gpu``: the plan's, else the default table's."""
        if gpu in self.prices:
            return self.prices[gpu]
        return float(default_prices()[gpu]["usd_per_gpu_hour"])

    def price_source(self, gpu: str) -> str:
        """Where the price of ``gpu`` comes from: ``plan`` or the table's URL and date."""
        if gpu in self.prices:
            return "plan"
        row = default_prices()[gpu]
        return f"{row['source']} ({row['date']})"
