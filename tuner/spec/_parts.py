"""The parts of a study spec: model, workload, objective with SLO bounds, and search (the
backends have their own module)."""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

import pydantic
from pydantic import ConfigDict, Field, field_validator, model_validator

from tuner._hints import did_you_mean
from tuner.bench.metrics import LATENCY_METRICS, THROUGHPUT_METRICS
from tuner.spec import _limits
from tuner.spec._backends import ProfilePath
from tuner.spec._base import MODEL_TEXT, PATH_TEXT, GpuType, Part
from tuner.spec._dataset import DatasetSpec, WeightedScenario
from tuner.spec._expr import Expression

# The objective metric priced by the GPU-hour: USD per million output tokens.
COST_METRIC = "cost_per_mtok"

__all__ = [
    "COST_METRIC",
    "SEARCH_ALGORITHMS",
    "SLO",
    "ConfirmSpec",
    "ModelSpec",
    "ObjectiveSpec",
    "PrescreenSpec",
    "SearchSpec",
    "WorkloadSpec",
]

SearchAlgorithm = Literal["grid", "random", "bayes"]
SEARCH_ALGORITHMS: tuple[str, ...] = typing.get_args(SearchAlgorithm)

# A genai-bench traffic scenario: D(in,out), N(mi,si)/(mo,so), U(min,max)/(min,max), U(in,out).
_NUM = r"\d+(?:\.\d+)?"
_SCENARIO = re.compile(
    rf"^(D\(\d+,\d+\)|N\({_NUM},{_NUM}\)/\({_NUM},{_NUM}\)|U\(\d+,\d+\)(/\(\d+,\d+\))?)$"
)


class ModelSpec(Part):
    """The model to serve."""

    name: str = Field(
        description="Served model name (the twin's catalog entry, SGLang's --served-model-name).",
        pattern=MODEL_TEXT,
    )
    path: str | None = Field(
        None,
        description="What --model-path gets (hub id or local dir); default: the name.",
        pattern=PATH_TEXT,
    )
    tokenizer: str | None = Field(
        None,
        description="Tokenizer for genai-bench (hub id or local dir); "
        "default: the model path for real servers, the bundled one for the twin.",
        pattern=PATH_TEXT,
    )

    @property
    def model_path(self) -> str:
        """The value of --model-path."""
        return self.path or self.name


class WorkloadSpec(Part):
    """The load genai-bench puts on each deployment: a concurrency ladder per traffic scenario.

    A scenario entry is a genai-bench scenario string, or ``{scenario, weight}`` giving its
    share of the traffic (the score is then the weighted mean over scenarios); both forms are
    stored as ``scenarios`` plus ``weights``. With ``dataset`` set, the scenario ``dataset``
    (the default then) sends the file's prompts as they are, as genai-bench's dataset mode
    does; a D/N/U scenario beside it cuts the file's text to the scenario's lengths.
    """

    scenarios: list[str] = Field(
        default_factory=lambda: ["D(1024,256)"],
        min_length=1,
        max_length=_limits.MAX_SCENARIOS,
        description="genai-bench traffic scenarios, e.g. D(1024,256) or N(480,240)/(300,150), "
        "or 'dataset' (the prompts of workload.dataset as they are); an entry may be "
        "{scenario, weight}. Default: ['dataset'] with a dataset, else ['D(1024,256)'].",
    )
    weights: dict[str, float] | None = Field(
        None,
        description="Each scenario's share of the traffic (relative weights, by scenario); "
        "null: equal shares. Set by {scenario, weight} entries.",
    )
    dataset: DatasetSpec | None = Field(
        None, description="A local prompt file (txt, csv, jsonl or json) for every level."
    )
    concurrency: list[int] = Field(
        default_factory=lambda: [8, 32, 64],
        min_length=1,
        max_length=_limits.MAX_LEVELS,
        description="Concurrency levels, measured lowest first.",
    )
    spawn_rate: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Users genai-bench starts per second at each level (its --spawn-rate; "
        "locust starts floor(rate) at a time; the estimator and pre-screen start theirs "
        "alike); null: as many as the level's concurrency, genai-bench's default, so all "
        "at once. Users started together keep their prefills in waves (higher TTFT); "
        "started one at a time (a rate below 2), they spread out like steady traffic.",
    )
    max_requests_per_level: int = Field(
        200,
        ge=1,
        le=_limits.MAX_REQUESTS_PER_LEVEL,
        description="Requests per level (genai-bench's soft cap).",
    )
    max_seconds_per_level: int = Field(
        60,
        ge=1,
        le=_limits.MAX_SECONDS_PER_LEVEL,
        description="Time per level; genai-bench counts whole minutes, so this is rounded up.",
    )
    warmup_requests: int | None = Field(
        None,
        ge=0,
        le=_limits.MAX_CONCURRENCY,
        description="Requests sent to each new server before its first level, all at once, "
        "at the first rung's prompt lengths, and not measured; null: one wave of the first "
        "level's users; 0: none. SGLang warms up with a few tokens, so the first real batch "
        "runs prefill kernels that compile on first use (Triton fused MoE, DeepGEMM, "
        "FlashInfer), a cost that would otherwise land in the first level's TTFT.",
    )

    @model_validator(mode="before")
    @classmethod
    def _weighted_entries(cls, data: Any) -> Any:
        # {scenario, weight} entries become a plain scenario list plus weights, which every
        # reader of ``scenarios`` (ladder, UI, backends) already understands.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        entries = data.get("scenarios")
        if "scenarios" not in data and data.get("dataset") is not None:
            data["scenarios"] = ["dataset"]
        if not isinstance(entries, list) or not any(isinstance(e, dict) for e in entries):
            return data
        if data.get("weights") is not None:
            raise ValueError("give weights either in the scenario entries or as weights, not both")
        names, weights = [], {}
        for i, entry in enumerate(entries):
            try:
                item = WeightedScenario.model_validate(
                    entry if isinstance(entry, dict) else {"scenario": entry}
                )
            except pydantic.ValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(
                    f"scenarios.{i}{'.' + where if where else ''}: {first['msg']}"
                ) from None
            names.append(item.scenario)
            weights[item.scenario] = item.weight
        data["scenarios"], data["weights"] = names, weights
        return data

    @field_validator("scenarios")
    @classmethod
    def _scenarios_parse(cls, scenarios: list[str]) -> list[str]:
        for text in scenarios:
            if text != "dataset" and not _SCENARIO.match(text):
                raise ValueError(
                    f"'{text}' is not a genai-bench scenario; write D(in,out), "
                    "N(mean_in,std_in)/(mean_out,std_out), U(min_in,max_in)/(min_out,max_out) "
                    "or dataset (with workload.dataset)"
                )
        return scenarios

    @field_validator("weights")
    @classmethod
    def _weights_positive(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        for name, weight in (weights or {}).items():
            if not 0 < weight <= 1e6:
                raise ValueError(f"{name}: a share of traffic is a number above 0 (at most 1e6)")
        return weights

    @model_validator(mode="after")
    def _scenarios_agree(self) -> WorkloadSpec:
        if "dataset" in self.scenarios and self.dataset is None:
            raise ValueError(
                "scenarios: 'dataset' sends the prompts of workload.dataset; set dataset "
                "(a prompt file) or use a D/N/U scenario"
            )
        if self.weights is not None:
            if len(set(self.scenarios)) != len(self.scenarios):
                raise ValueError("scenarios: weighted scenarios must be distinct")
            if set(self.weights) != set(self.scenarios):
                raise ValueError(
                    "weights: name each scenario once: "
                    f"{', '.join(self.scenarios)} (got {', '.join(self.weights)})"
                )
        return self

    def weight(self, scenario: str) -> float:
        """The share of traffic of ``scenario`` (as genai-bench names it), relative: 1 each
        when no weights are set."""
        if not self.weights:
            return 1.0
        squeezed = {name.replace(" ", ""): w for name, w in self.weights.items()}
        return squeezed.get(scenario.replace(" ", ""), 1.0)

    @field_validator("concurrency")
    @classmethod
    def _ladder_ascends(cls, levels: list[int]) -> list[int]:
        if any(level < 1 for level in levels):
            raise ValueError("every level must be at least 1")
        if any(level > _limits.MAX_CONCURRENCY for level in levels):
            raise ValueError(
                f"every level must be at most {_limits.MAX_CONCURRENCY:,} concurrent requests"
            )
        if levels != sorted(set(levels)):
            raise ValueError("levels must be distinct and in ascending order")
        return levels


class SLO(Part):
    """Latency and error bounds a level must meet to count. Latencies in milliseconds."""

    ttft_p50_ms: float | None = Field(None, gt=0, description="Median time to first token.")
    ttft_p90_ms: float | None = Field(None, gt=0, description="p90 time to first token.")
    ttft_p99_ms: float | None = Field(None, gt=0, description="p99 time to first token.")
    tpot_p50_ms: float | None = Field(None, gt=0, description="Median time per output token.")
    tpot_p90_ms: float | None = Field(None, gt=0, description="p90 time per output token.")
    tpot_p99_ms: float | None = Field(None, gt=0, description="p99 time per output token.")
    e2e_p50_ms: float | None = Field(None, gt=0, description="Median end-to-end latency.")
    e2e_p90_ms: float | None = Field(None, gt=0, description="p90 end-to-end latency.")
    e2e_p99_ms: float | None = Field(None, gt=0, description="p99 end-to-end latency.")
    error_rate: float = Field(0.01, ge=0, le=1, description="Largest share of failed requests.")

    def bounds(self) -> dict[str, float]:
        """The set bounds, by metric name."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ObjectiveSpec(Part):
    """What a trial's score is.

    The score is the best value of ``metric`` over the concurrency levels that meet every SLO
    bound; ``goodput`` is the chosen throughput under that rule. With several scenarios the
    score is the mean of the per-scenario scores, weighted by the scenarios' shares of traffic.
    ``cost_per_mtok`` is the price of the config's GPUs per million output tokens at its
    goodput (lower is better).
    """

    metric: str = Field(
        "goodput",
        description="goodput, cost_per_mtok (USD per million output tokens at the goodput), "
        "or a level metric such as ttft_p99_ms.",
    )
    direction: Literal["max", "min"] | None = Field(
        None, description="max or min; default: max for throughputs, min for latencies."
    )
    throughput: Literal["output", "total", "requests"] = Field(
        "output",
        description="The throughput goodput counts: output tokens/s, all tokens/s, req/s.",
    )
    per_gpu: bool = Field(False, description="Divide the score by the GPUs a config uses.")
    usd_per_gpu_hour: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="What one GPU costs an hour (USD), for cost_per_mtok; default: the price "
        "table's (tuner/prices.yaml) for the backend's GPU type.",
    )
    source: Literal["server", "client", "strict"] = Field(
        "server",
        description="Whose figures the score and the SLO use. server: the server's own "
        "/metrics where it vouches for them (throughputs, means, percentiles its buckets "
        "resolve), genai-bench's elsewhere or when the server has no metrics; client: "
        "genai-bench's alone; strict: genai-bench's, and a level where they disagree "
        "(client_bound) or the twin's host fell behind (host_overloaded) fails the SLO.",
    )
    slo: SLO = Field(default_factory=SLO, description="Bounds a level must meet.")
    pareto: str | None = Field(
        None,
        description="A latency metric such as tpot_p99_ms to trade against the score: the "
        "study then searches for the Pareto front of (score, this latency at the scoring "
        "level) and reports the front of operating points; null: a single best.",
    )

    @field_validator("pareto")
    @classmethod
    def _pareto_is_a_latency(cls, metric: str | None) -> str | None:
        if metric is not None and metric not in LATENCY_METRICS:
            raise ValueError(
                f"'{metric}' is not a latency metric{did_you_mean(metric, LATENCY_METRICS)}; "
                "use one such as tpot_p99_ms or ttft_p90_ms, or null for a single-objective study"
            )
        return metric

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, metric: str) -> str:
        known = ("goodput", COST_METRIC, *THROUGHPUT_METRICS, *LATENCY_METRICS, "error_rate")
        if metric not in known:
            raise ValueError(
                f"'{metric}' is not a level metric{did_you_mean(metric, known)}; use goodput, "
                f"{COST_METRIC}, a throughput such as output_throughput, or a latency such as "
                "ttft_p99_ms"
            )
        return metric

    @model_validator(mode="after")
    def _cost_is_lower_better(self) -> ObjectiveSpec:
        if self.metric != COST_METRIC:
            return self
        if self.per_gpu:
            raise ValueError(f"per_gpu: {COST_METRIC} already counts every GPU; drop per_gpu")
        if self.direction == "max":
            raise ValueError(f"direction: {COST_METRIC} is lower-better; drop direction")
        if self.throughput != "output":
            raise ValueError(f"throughput: {COST_METRIC} counts output tokens; drop throughput")
        return self


class PrescreenSpec(Part):
    """Estimate many candidates with the twin's performance model before the search.

    Runs in the driver in seconds and on no GPU. Candidates predicted not to start, or to miss
    an SLO bound by more than ``margin``, are never measured (grid search measures them last);
    the ``top_k`` best predicted ones are measured first.
    """

    # "with" is a Python keyword: the field is ``with_`` in Python and "with" in files.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    with_: Literal["estimate"] = Field(
        "estimate",
        alias="with",
        description="The estimator: estimate (the twin's model of SGLang, in virtual time).",
    )
    top_k: int = Field(
        5, ge=0, le=100, description="Best predicted configurations the search measures first."
    )
    candidates: int = Field(
        500,
        ge=1,
        le=20_000,
        description="Configurations to estimate: the whole grid when it has at most this "
        "many points, else this many random draws.",
    )
    margin: float = Field(
        0.5,
        ge=0,
        description="Drop configurations predicted to miss an SLO bound by more than this "
        "fraction of the bound (0.5: 50 % over it) even at their best level.",
    )
    gpu: GpuType | None = Field(
        None,
        description="GPU to estimate for; default: backend.gpu (needed for local and ome, "
        "whose GPUs are not named in the spec).",
    )
    profile: ProfilePath | None = Field(
        None,
        description="Fact profile (YAML, from autotuner calibrate) to estimate with, e.g. one "
        "fitted to this cluster's earlier studies; default: backend.profile for twin and "
        "estimate backends, else none. Relative paths are relative to the working directory.",
    )


class ConfirmSpec(Part):
    """Re-run the best configurations on fresh deployments after the search.

    The winner is named only when it beats the runner-up beyond the run-to-run noise;
    otherwise the study reports a tie and picks the cheapest tied configuration.
    """

    top_k: int = Field(
        3, ge=0, le=20, description="Best configurations to re-run; 0 disables confirmation."
    )
    repeats: int = Field(
        2, ge=0, le=20, description="Fresh runs per configuration; 0 disables confirmation."
    )
    tie_within: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Relative difference of mean scores under which two configurations tie "
        "even when the runs show no noise.",
    )

    @property
    def enabled(self) -> bool:
        """Whether the study confirms its winner."""
        return self.top_k > 0 and self.repeats > 0


class SearchSpec(Part):
    """How configurations are chosen.

    The defaults are the method that reached 98 % of the best goodput in the fewest trials and
    GPU hours in ``benchmarks/search_efficiency.py``: Bayesian search seeded by a twin
    pre-screen, with early stopping on the concurrency ladder and a confirmed winner.
    """

    algorithm: SearchAlgorithm = Field(
        "bayes",
        description="grid (every point), random, or bayes (Optuna TPE with the SLO as a "
        "learned constraint; multi-objective TPE when objective.pareto is set).",
    )
    max_trials: int | None = Field(
        None,
        ge=1,
        le=_limits.MAX_TRIALS,
        description="Trials to run; default: 20, or the whole grid.",
    )
    seed: int | None = Field(
        0,
        ge=0,
        le=2**32 - 1,  # what NumPy's and Optuna's samplers take
        description="Seed of the sampler; null for a random one.",
    )
    max_concurrent: int | None = Field(
        None, ge=1, le=256, description="Trials at once; default: as many as the GPUs allow."
    )
    time_budget_s: float | None = Field(
        None,
        gt=0,
        le=_limits.MAX_TIME_BUDGET_S,
        description="Stop starting trials after this many seconds.",
    )
    pending_timeout_s: float | None = Field(
        3600,
        gt=0,
        le=_limits.MAX_TIME_BUDGET_S,
        description="Fail the study when a trial has waited this long for GPUs that no node "
        "can give it (the cluster shrank, or other studies hold the pool); null: wait forever.",
    )
    node_loss_retries: int = Field(
        1,
        ge=0,
        le=10,
        description="Times a trial whose node (or actor) was lost is run again elsewhere.",
    )
    early_stopping: bool = Field(
        True,
        description="Stop a trial between concurrency levels once even its most hopeful "
        "projection (how finished trials grew from that level on) cannot beat the best score "
        "so far, freeing its GPUs. Not used in multi-objective studies.",
    )
    prescreen: PrescreenSpec | None = Field(
        default_factory=PrescreenSpec,
        description="Estimate candidates with the twin first and seed the search with the "
        "best predicted ones; null: no pre-screen.",
    )
    confirm: ConfirmSpec = Field(
        default_factory=ConfirmSpec,
        description="Re-run the best configurations after the search to confirm the winner.",
    )
    derived: dict[str, str] = Field(
        default_factory=dict,
        description="Flags computed from the searched ones instead of searched, e.g. "
        "{cuda_graph_max_bs: max_running_requests} or {dp_size: gpus // tp_size}.",
    )

    @field_validator("derived")
    @classmethod
    def _derived_parse(cls, derived: dict[str, str]) -> dict[str, str]:
        # The names are flags of the study's SGLang version: checked with the spec's flags.
        for name, text in derived.items():
            try:
                Expression(text)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from e
        return derived
