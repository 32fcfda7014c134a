"""``StudySpec``: everything a study needs, validated before anything starts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from tuner import serverargs
from tuner.prices import default_price
from tuner.spec import _flags, _limits
from tuner.spec._backends import BackendSpec, TwinBackendSpec
from tuner.spec._expr import Expression, ExpressionError
from tuner.spec._parts import COST_METRIC, ModelSpec, ObjectiveSpec, SearchSpec, WorkloadSpec

__all__ = ["DEFAULT_MAX_TRIALS", "RangeSpec", "StudySpec"]

DEFAULT_MAX_TRIALS = 20
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class RangeSpec(BaseModel):
    """A numeric range to sample from."""

    # NaN and infinity would pass every comparison below the wrong way.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    low: StrictInt | StrictFloat = Field(description="Smallest value.")
    high: StrictInt | StrictFloat = Field(description="Largest value.")
    log: bool = Field(False, description="Sample on a log scale.")
    type: Literal["int", "float"] | None = Field(
        None, description="int or float; default: int when both ends are integers."
    )
    step: StrictInt | StrictFloat | None = Field(None, gt=0, description="Grid step, if any.")

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if self.low >= self.high:
            raise ValueError("low must be smaller than high")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        """Whether the range draws integers."""
        if self.type is not None:
            return self.type == "int"
        return isinstance(self.low, int) and isinstance(self.high, int)

    def size(self) -> float:
        """How many grid points a stepped range has (``inf`` for a continuous one), computed
        without listing them."""
        if self.step is None:
            return math.inf
        steps = (self.high - self.low) / self.step
        return math.floor(steps + 1e-9) + 1 if math.isfinite(steps) else math.inf

    def point(self, index: int) -> float | int:
        """The ``index``-th grid point of a stepped range (from 0, at ``low``)."""
        assert self.step is not None
        value = self.low + index * self.step
        return int(value) if self.is_int else round(value, 10)

    def points(self) -> list[float] | list[int] | None:
        """The grid points of a stepped range, or None for a continuous one.

        Raises:
            ValueError: the range has more than ``MAX_GRID_POINTS`` points.
        """
        if self.step is None:
            return None
        count = self.size()
        if count > _limits.MAX_GRID_POINTS:
            raise ValueError(
                f"a range with {count:g} points; at most {_limits.MAX_GRID_POINTS:,} "
                "can be listed: raise step"
            )
        return [self.point(i) for i in range(int(count))]  # type: ignore[return-value]


ParamSpec = list[Scalar] | RangeSpec
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class StudySpec(BaseModel):
    """A study: the model, where to run it, what to search, how to load it and how to score it.

    Load one with :func:`tuner.spec.load_spec` (YAML or JSON, including the earlier
    ``inference-autotuner`` task format) or build it in Python.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(
        pattern=_NAME,
        max_length=40,
        description="Study name: lower-case letters, digits and dashes.",
    )
    description: str = Field("", max_length=2000, description="Free text for people.")
    model: ModelSpec = Field(description="The model to serve.")
    backend: BackendSpec = Field(
        default_factory=TwinBackendSpec,
        description="Where servers run: twin, estimate, local or ome.",
    )
    space: dict[str, ParamSpec] = Field(
        min_length=1,
        description="SGLang flags to search (dashes as underscores): lists or ranges.",
    )
    fixed: dict[str, Scalar] = Field(
        default_factory=dict, description="SGLang flags set the same for every trial."
    )
    constraints: list[str] = Field(
        default_factory=list,
        max_length=_limits.MAX_CONSTRAINTS,
        description="Expressions every config must meet, e.g. 'cuda_graph_max_bs <= "
        "max_running_requests'. 'tp_size * dp_size <= gpus' always applies.",
    )
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec, description="The load.")
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec, description="The score.")
    search: SearchSpec = Field(default_factory=SearchSpec, description="The search.")
    trial_timeout_s: float = Field(
        3600,
        gt=0,
        le=_limits.MAX_TRIAL_TIMEOUT_S,
        description="Seconds one trial may take in all.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _every_error(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> StudySpec:
        """Report the flag errors with the structure errors, not behind them."""
        try:
            spec = handler(data)
        except ValidationError as e:
            problems = _flags.flag_problems(data) if isinstance(data, Mapping) else []
            raise _flags.merged(cls.__name__, e.errors(), problems) from None
        if problems := _flags.flag_problems(spec.model_dump()):
            raise _flags.merged(cls.__name__, [], problems)
        return spec._priced()

    def _priced(self) -> StudySpec:
        """The spec with the GPU price a cost objective needs, from the price table when the
        spec gives none, so the study keeps the price it was scored with."""
        goal = self.objective
        if goal.metric != COST_METRIC or goal.usd_per_gpu_hour is not None:
            return self
        price = default_price(self.gpu_type)
        if price is None:
            where = f"GPU type {self.gpu_type}" if self.gpu_type else "no GPU type"
            raise _flags.merged(type(self).__name__, [], [(
                ("objective", "usd_per_gpu_hour"),
                f"{COST_METRIC} needs a price per GPU-hour and the price table has none for "
                f"{where}; give objective.usd_per_gpu_hour (USD)")])
        return self.model_copy(
            update={"objective": goal.model_copy(update={"usd_per_gpu_hour": price})})

    @model_validator(mode="after")
    def _flags_valid(self) -> StudySpec:
        if _flags.flag_problems(self.model_dump()):
            return self  # reported by _every_error; what follows needs valid flags
        for name, value in self.fixed.items():
            if problem := serverargs.gpu_problem(name, value, self.gpu_type):
                raise ValueError(f"fixed.{name}: {problem}")
        if problem := serverargs.startup_problem(self.fixed, self.gpu_type):
            raise ValueError(f"fixed: {problem}")
        for name, spec in self.space.items():
            for value in spec if isinstance(spec, list) else []:
                if problem := serverargs.gpu_problem(name, value, self.gpu_type):
                    raise ValueError(f"space.{name}: {problem}")
        for i, text in enumerate(self.constraints):
            try:
                unknown = Expression(text).names - self._known_names()
            except ValueError as e:
                raise ValueError(f"constraints.{i}: {e}") from e
            if unknown:
                raise ValueError(
                    f"constraints.{i}: '{text}' names {', '.join(sorted(unknown))}, "
                    "which is neither a flag in space/fixed nor 'gpus'"
                )
        self._check_fits()
        self._check_constraints_evaluate()
        if self.search.algorithm == "grid":
            self._check_grid()
        return self

    def cautions(self) -> list[str]:
        """What is valid but probably not what the user wants, for the front ends to show
        before the study runs (and the study's start event to keep)."""
        found = []
        if self.backend.kind in ("twin", "estimate") and not (
            set(self.space) & serverargs.twin_modelled()
        ):
            found.append(
                f"space: the twin does not model {', '.join(sorted(self.space))}, so every "
                f"trial on backend {self.backend.kind} would measure the same server; search "
                "a flag it models (the twin column of 'autotuner flags') or use backend local "
                "or ome"
            )
        return found

    @property
    def sglang_version(self) -> str:
        """The SGLang version whose flags the spec uses."""
        return self.backend.sglang_version

    @property
    def gpu_type(self) -> str | None:
        """The GPU type the servers run on, when the spec names it (the twin's and the
        estimator's GPU, or the pre-screen's for local and ome)."""
        gpu = getattr(self.backend, "gpu", None)
        if gpu is None and self.search.prescreen is not None:
            gpu = self.search.prescreen.gpu
        return gpu

    def _known_names(self) -> set[str]:
        return set(self.space) | set(self.fixed) | {"gpus", "tp_size", "dp_size"}

    def _check_fits(self) -> None:
        capacity = self.backend.gpus
        if capacity is None:  # discovered from the cluster at run time
            return
        smallest_dp = min(self.int_values("dp_size"))
        for tp in self.int_values("tp_size"):
            if tp * smallest_dp > capacity:
                raise ValueError(
                    f"space.tp_size: {tp} GPUs per server can never fit in backend.gpus "
                    f"= {capacity}; drop it or raise backend.gpus"
                )

    def int_values(self, name: str) -> list[int]:
        """Every value an integer flag can take (its ends for a range; 1 when unset)."""
        if name in self.fixed:
            return [int(self.fixed[name])]  # type: ignore[arg-type]
        spec = self.space.get(name)
        if spec is None:
            return [1]
        if isinstance(spec, RangeSpec):
            return [int(spec.low), int(spec.high)]
        return [int(v) for v in spec]  # type: ignore[arg-type]

    def _check_constraints_evaluate(self) -> None:
        """Evaluate every constraint on a few configs of the space, so that ``x / 0`` or
        ``'a' < x`` is a spec error now, not a failed study later."""
        if not self.constraints:
            return
        gpus = self.backend.gpus if self.backend.gpus is not None else 8  # ome: found later
        for config in itertools.islice(self._probes(), 2_000):
            values = {"tp_size": 1, "dp_size": 1, **self.fixed, **config, "gpus": gpus}
            for i, check in enumerate(self._constraints):
                try:
                    check(values)
                except ExpressionError as e:
                    raise ValueError(f"constraints.{i}: {e}") from e

    def _probes(self) -> Iterator[dict[str, object]]:
        """The first config, the last, then each value of each flag with the others first."""
        axes = {name: self._probe_values(spec) for name, spec in self.space.items()}
        first = {name: values[0] for name, values in axes.items()}
        yield first
        yield {name: values[-1] for name, values in axes.items()}
        for name, values in axes.items():
            for value in values[1:]:
                yield {**first, name: value}

    @staticmethod
    def _probe_values(spec: ParamSpec) -> list[object]:
        if isinstance(spec, RangeSpec):
            middle = (spec.low + spec.high) / 2
            return [spec.low, int(middle) if spec.is_int else middle, spec.high]
        return list(spec)

    def grid_points(self) -> float:
        """Points of the grid before constraints (``inf`` with a continuous range), computed
        without listing them."""
        return math.prod(
            spec.size() if isinstance(spec, RangeSpec) else len(spec)
            for spec in self.space.values()
        )

    @cached_property
    def _grid_sizes(self) -> dict[int | None, int]:
        return {}

    @property
    def grid_size(self) -> int:
        """Grid points that meet the constraints.

        Counted once per GPU count (the only part of a spec copied with ``model_copy`` that
        the count depends on), so views never enumerate a grid again.

        Raises:
            ExpressionError: a constraint cannot be evaluated at some point.
        """
        gpus = self.backend.gpus
        if gpus not in self._grid_sizes:
            self._grid_sizes[gpus] = sum(1 for _ in self.grid(strict=True))
        return self._grid_sizes[gpus]

    def _check_grid(self) -> None:
        for name, spec in self.space.items():
            if isinstance(spec, RangeSpec) and spec.step is None:
                raise ValueError(f"space.{name}: grid search needs a list or a range with a step")
        if (points := self.grid_points()) > _limits.MAX_GRID_POINTS:
            raise ValueError(
                f"space: the grid has {points:,.0f} points; grid search takes at most "
                f"{_limits.MAX_GRID_POINTS:,}: drop values or use random or bayes search"
            )
        try:
            size = self.grid_size
        except ExpressionError as e:
            raise ValueError(f"{e.args[0]}") from e
        if size == 0:
            raise ValueError("constraints: no point of the grid meets every constraint")
        if size > _limits.MAX_TRIALS:
            raise ValueError(
                f"space: {size:,} grid points meet the constraints; a study runs at most "
                f"{_limits.MAX_TRIALS:,} trials: drop values or use random or bayes search"
            )
        if self.search.max_trials is not None and self.search.max_trials < size:
            raise ValueError(
                f"search.max_trials: the grid has {size} points; raise max_trials "
                "to that or use random or bayes search"
            )

    # --- helpers the search and the backends use -------------------------------------------

    @cached_property
    def _constraints(self) -> list[Expression]:
        return [Expression(text) for text in self.constraints]

    def gpus_needed(self, config: dict[str, object]) -> int:
        """GPUs one server with this config occupies (tp_size x dp_size)."""
        merged = {**self.fixed, **config}
        return int(merged.get("tp_size", 1)) * int(merged.get("dp_size", 1))  # type: ignore[call-overload]

    def allows(
        self, config: dict[str, object], capacity: int | None = None, *, strict: bool = False
    ) -> bool:
        """Whether a config meets every constraint, SGLang's built-in ones included
        (:func:`tuner.serverargs.startup_problem`), and fits in ``capacity`` GPUs.

        A constraint that cannot be evaluated for the config (a division by zero the spec's
        checks did not meet) excludes it, as a derived flag that cannot be computed does;
        with ``strict`` it raises instead.

        Raises:
            ExpressionError: with ``strict``, naming the constraint as ``constraints.<i>``.
        """
        gpus = capacity if capacity is not None else self.backend.gpus
        values = {"tp_size": 1, "dp_size": 1, **self.fixed, **config, "gpus": gpus}
        if gpus is not None and self.gpus_needed(config) > gpus:
            return False
        if serverargs.startup_problem({**self.fixed, **config}, self.gpu_type):
            return False
        for i, check in enumerate(self._constraints):
            try:
                if not check(values):
                    return False
            except ExpressionError as e:
                if strict:
                    raise ExpressionError(f"constraints.{i}: {e}") from e
                return False
        return True

    def grid(self, *, strict: bool = False) -> Iterator[dict[str, object]]:
        """Every grid point that meets the constraints, in a stable order.

        Raises:
            ExpressionError: with ``strict``, a constraint that cannot be evaluated.
        """
        names = sorted(self.space)
        # Lazily, by index: a caller may take the first few points of a huge grid.
        sizes = [self._axis_size(self.space[name]) for name in names]
        if 0 in sizes:
            return
        index = [0] * len(names)
        while True:
            config = {name: self._axis_value(self.space[name], i)
                      for name, i in zip(names, index, strict=True)}
            if self.allows(config, strict=strict):
                yield config
            axis = len(index) - 1  # the odometer: the last flag turns fastest
            while axis >= 0:
                index[axis] += 1
                if index[axis] < sizes[axis]:
                    break
                index[axis] = 0
                axis -= 1
            if axis < 0:
                return

    @staticmethod
    def _axis_size(spec: ParamSpec) -> float:
        if isinstance(spec, RangeSpec):
            return 0 if spec.step is None else spec.size()  # continuous: no grid
        return len(spec)

    @staticmethod
    def _axis_value(spec: ParamSpec, index: int) -> object:
        return spec.point(index) if isinstance(spec, RangeSpec) else spec[index]

    def check_params(self, params: dict[str, object]) -> None:
        """Check a hand-written parameter set (``autotuner render --params``).

        Raises:
            SpecError: an unknown flag, a bad value, or a config the constraints exclude.
        """
        from tuner.exceptions import SpecError

        version = self.sglang_version
        flags = serverargs.table(version).flags
        for name, value in params.items():
            if name not in flags or name in serverargs.MANAGED:
                raise SpecError(
                    f"params.{name}: not a flag of SGLang {version} a spec may set"
                    f"{serverargs.suggest(name, version)}"
                )
            if problem := serverargs.check_value(name, value, version):
                raise SpecError(f"params.{name}: {value!r} {problem}")
        if problem := serverargs.startup_problem({**self.fixed, **params}, self.gpu_type):
            raise SpecError(f"params: {problem}")
        if not self.allows(params):
            raise SpecError(
                f"params: {params} breaks a constraint or needs more than {self.backend.gpus} GPUs"
            )

    def min_gpus(self) -> int:
        """GPUs the smallest config of the space occupies."""
        return min(self.int_values("tp_size")) * min(self.int_values("dp_size"))

    @property
    def max_trials(self) -> int:
        """Trials the study runs at most."""
        if self.search.max_trials is not None:
            return self.search.max_trials
        if self.search.algorithm == "grid":
            return self.grid_size
        return DEFAULT_MAX_TRIALS

    def server_config(self, params: dict[str, object]) -> dict[str, object]:
        """The full flag set of one trial: fixed flags plus the sampled ones."""
        return {**self.fixed, **params}

