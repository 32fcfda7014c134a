"""The twin pre-screen: estimate many candidates in seconds before any GPU is used.

Runs in the driver before the Tuner starts. Each candidate goes through the ``estimate``
backend (the twin's start-up checks and performance model, in virtual time) and the same
:class:`~tuner.objective.Ladder` a real trial climbs, so predictions are scored exactly like
measurements.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from tuner import backends, objective, serverargs
from tuner.backends._estimate import read_profile
from tuner.exceptions import NotSupportedError
from tuner.search._space import Space, config_key
from tuner.spec import EstimateBackendSpec, StudySpec
from tuner.trial._climb import climb

__all__ = ["Prediction", "Prescreen", "prescreen"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """What the twin predicts for one config.

    Attributes:
        config: the trial config.
        score: the predicted score; None when no level is predicted to meet the SLO.
        excess: the predicted SLO excess (see :func:`~tuner.objective.slo_excess`).
        failure: ``oom`` or ``startup`` when the server is predicted not to start.
    """

    config: dict[str, Any]
    score: float | None = None
    excess: float | None = None
    failure: str | None = None


@dataclass(frozen=True)
class Prescreen:
    """The outcome of a pre-screen.

    Attributes:
        predictions: every estimated config, best predicted first.
        seeds: the ``top_k`` best predicted configs, which the search measures first.
        dropped: configs predicted not to start or to miss the SLO by more than the margin.
        seconds: wall time the pre-screen took.
        reasons: how many were dropped, by reason (``oom``, ``startup``, ``slo``).
    """

    predictions: list[Prediction]
    seeds: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)

    def order(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Grid order: seeds first, then the other points as they were, dropped ones last (a
        grid still measures every point)."""
        seeds = {config_key(c) for c in self.seeds}
        dropped = {config_key(c) for c in self.dropped}
        present = {config_key(p) for p in points}
        first = [c for c in self.seeds if config_key(c) in present]
        middle = [p for p in points if config_key(p) not in seeds | dropped]
        last = [p for p in points if config_key(p) in dropped]
        return first + middle + last

    def summary(self) -> dict[str, Any]:
        """A JSON-able account for the study's events."""
        by_key = {config_key(p.config): p for p in self.predictions}
        return {
            "estimated": len(self.predictions),
            "seconds": round(self.seconds, 2),
            "dropped": len(self.dropped),
            "reasons": self.reasons,
            "seeds": [
                {"params": c, "predicted_score": by_key[config_key(c)].score} for c in self.seeds
            ],
        }


def prescreen(spec: StudySpec, capacity: int, *, workdir: Path | None = None) -> Prescreen:
    """Estimate candidates of ``spec`` with the twin and pick seeds and configs to drop.

    Args:
        spec: the study; ``spec.search.prescreen`` must be set.
        capacity: GPUs the study may use at once.
        workdir: folder for the estimate backend (it writes nothing today).

    Raises:
        NotSupportedError: the twin cannot model this study (unknown model or GPU type); the
            study can run without a pre-screen.
        SpecError: the profile to estimate with cannot be read.
    """
    options = spec.search.prescreen
    assert options is not None
    started = time.monotonic()
    gpu = options.gpu or getattr(spec.backend, "gpu", None)
    if gpu is None:
        raise NotSupportedError(
            f"search.prescreen: backend '{spec.backend.kind}' does not name its GPU type; "
            "set search.prescreen.gpu (e.g. H100) to pre-screen"
        )
    # A twin's own profile describes the servers it predicts: estimate with it by default.
    field, profile = "search.prescreen.profile", options.profile
    if profile is None and (profile := getattr(spec.backend, "profile", None)):
        field = "backend.profile"
    read_profile(profile, field)  # a bad file fails the study now, naming its field
    estimate_spec = spec.model_copy(
        update={
            "backend": EstimateBackendSpec(
                gpu=gpu,
                gpus=capacity,
                startup_timeout_s=spec.backend.startup_timeout_s,
                profile=profile,
            )
        }
    )
    backend = backends.make(
        estimate_spec, study_id="prescreen", workdir=workdir or Path(tempfile.gettempdir())
    )
    _check_model(spec, gpu, capacity)
    space = Space(spec, capacity)
    predictions = [_predict(backend, config) for config in _candidates(space)]
    sign = 1.0 if objective.direction(spec.objective) == "max" else -1.0
    predictions.sort(
        key=lambda p: (
            p.failure is not None,
            p.score is None,
            -sign * p.score if p.score is not None else (p.excess or 0.0),
        )
    )
    reasons: dict[str, int] = {}
    dropped, kept = [], []
    for p in predictions:
        why = p.failure or ("slo" if (p.excess or 0.0) > options.margin else None)
        if why:
            reasons[why] = reasons.get(why, 0) + 1
            dropped.append(p.config)
        else:
            kept.append(p.config)
    return Prescreen(
        predictions=predictions,
        seeds=kept[: options.top_k],
        dropped=dropped,
        seconds=time.monotonic() - started,
        reasons=reasons,
    )


def _check_model(spec: StudySpec, gpu: str, capacity: int) -> None:
    import twin

    # Flags of a later SGLang the twin's version lacks would fail every estimate alike.
    named = set(spec.space) | set(spec.fixed) | set(spec.search.derived)
    if unknown := sorted(named - set(serverargs.table(serverargs.default_version()).flags)):
        raise NotSupportedError(
            f"search.prescreen: the twin simulates SGLang {serverargs.default_version()}, "
            f"which has no {', '.join(unknown)}; set search.prescreen to null"
        )
    try:
        twin.resolve_server_args(
            {"model_path": spec.model.model_path, **spec.fixed}, gpu=gpu, num_gpus=capacity
        )
    except twin.StartupError:
        return  # the fixed flags alone may not start; the searched ones decide
    except ValueError as e:
        raise NotSupportedError(
            f"search.prescreen: the twin cannot model this study ({e}); "
            "set search.prescreen to null, or use a model the twin knows"
        ) from e


def _candidates(space: Space) -> list[dict[str, Any]]:
    """The whole grid when it is small enough, else uniform random draws."""
    limit = space.spec.search.prescreen.candidates  # type: ignore[union-attr]
    if space.is_discrete:
        grid = list(itertools.islice(space.points(), limit + 1))
        if len(grid) <= limit:
            return grid
    sampler = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=space.spec.search.seed)
    )
    distributions = space.distributions()
    found: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    for _ in range(limit * 20):
        if len(found) >= limit:
            break
        trial = sampler.ask(distributions)
        sampler.tell(trial, state=optuna.trial.TrialState.FAIL)
        config = space.complete(trial.params)
        if config is not None:
            found.setdefault(config_key(config), config)
    return list(found.values())


def _predict(backend: backends.Backend, config: dict[str, Any]) -> Prediction:
    result = climb(backend, config, trial_id="prescreen")
    return Prediction(
        config,
        score=result.score,
        excess=result.slo_excess,
        failure=result.reason.value if result.failed and result.reason else None,
    )
