"""``Space``: a spec's search space as the searchers see it: distributions, derived flags, and
which configs may run."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import optuna

from tuner import serverargs
from tuner.exceptions import SpecError
from tuner.spec import RangeSpec, StudySpec
from tuner.spec._expr import Expression, ExpressionError

__all__ = ["Space", "config_key"]


def config_key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable identity of a config, whatever the order of its keys."""
    return tuple(sorted(params.items()))


class Space:
    """The searched flags of a spec, with derived ones filled in and the GPUs taken into account.

    Raises:
        SpecError: ``search.derived`` names a flag that is also searched or fixed, or uses a
            name that is neither a flag in space/fixed nor ``gpus``.
    """

    def __init__(self, spec: StudySpec, capacity: int) -> None:
        self.spec = spec
        self.capacity = capacity
        self._derived: dict[str, Expression] = {}
        known = set(spec.space) | set(spec.fixed) | {"gpus", "tp_size", "dp_size"}
        for name, text in spec.search.derived.items():
            if name in spec.space or name in spec.fixed:
                raise SpecError(
                    f"search.derived.{name}: also in space or fixed; keep it in one place"
                )
            formula = Expression(text)
            if unknown := formula.names - known:
                raise SpecError(
                    f"search.derived.{name}: '{text}' names {', '.join(sorted(unknown))}, "
                    "which is neither a flag in space/fixed nor 'gpus'"
                )
            self._derived[name] = formula

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """One Optuna distribution per searched flag, by name."""
        out: dict[str, optuna.distributions.BaseDistribution] = {}
        for name in sorted(self.spec.space):
            spec = self.spec.space[name]
            if not isinstance(spec, RangeSpec):
                out[name] = optuna.distributions.CategoricalDistribution(spec)
            elif spec.is_int:
                out[name] = optuna.distributions.IntDistribution(
                    int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1)
                )
            else:
                out[name] = optuna.distributions.FloatDistribution(
                    spec.low, spec.high, log=spec.log, step=spec.step
                )
        return out

    @property
    def is_discrete(self) -> bool:
        """Whether every searched flag has a finite set of values (a grid exists)."""
        return all(
            not isinstance(spec, RangeSpec) or spec.step is not None
            for spec in self.spec.space.values()
        )

    def complete(self, sampled: Mapping[str, Any]) -> dict[str, Any] | None:
        """The trial config of sampled values: stepped floats rounded, derived flags added.

        None when the config breaks a constraint (SGLang's built-in ones included), needs
        more GPUs than the study has, or a derived flag gets a value SGLang would refuse.
        """
        # Stepped floats come back as 0.7999999999; the config (and its launch line) says 0.8.
        config = {k: round(v, 10) if isinstance(v, float) else v for k, v in sampled.items()}
        if self._derived:
            values = {
                "tp_size": 1,
                "dp_size": 1,
                **self.spec.fixed,
                **config,
                "gpus": self.capacity,
            }
            for name, formula in self._derived.items():
                try:
                    value = formula.value(values)
                except ExpressionError:  # x / 0 and the like: no config to derive
                    return None
                version = self.spec.sglang_version
                if serverargs.table(version).flags[name].kind == "int":
                    if not isinstance(value, int | float) or not math.isfinite(value):
                        return None
                    value = int(value)
                if serverargs.check_value(name, value, version):
                    return None
                config[name] = value
        return config if self.spec.allows(config, self.capacity) else None

    def points(self) -> Iterator[dict[str, Any]]:
        """Every grid point that may run, completed, in the spec's stable order."""
        for sampled in self.spec.grid():
            config = self.complete(sampled)
            if config is not None:
                yield config

    def sampled_part(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The searched flags of a trial config (derived ones dropped)."""
        return {k: v for k, v in config.items() if k in self.spec.space}
