"""One trial climbed in this process: a backend whose ``measure`` needs no server and takes
milliseconds (the ``estimate`` backend) runs the whole ladder here, with no Ray actor.

The pre-screen and in-process studies (:mod:`tuner.trial._inprocess`) both climb through this
function, and it scores through the same :class:`~tuner.objective.Ladder` a Ray trial climbs,
so predictions, in-process trials and measured trials are scored alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner import objective
from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import BackendError
from tuner.store import TrialReason

if TYPE_CHECKING:
    from tuner.backends.base import Backend

__all__ = ["Climb", "climb"]


@dataclass(frozen=True)
class Climb:
    """What one config gave over its ladder.

    Attributes:
        config: the trial's params (the searched flags).
        gpus: GPUs the server would occupy.
        levels: the levels measured, in order.
        score: the objective's value; None when no level met the SLO or it did not start.
        slo_excess: see :func:`~tuner.objective.slo_excess`.
        latency: see :func:`~tuner.objective.tradeoff_latency`.
        reason: why it has no score (``oom``, ``startup``: it does not start;
            ``slo_violated``: no level met the SLO); None when it has one.
        message: the reason, for a user.
        seconds: wall time of the climb.
    """

    config: dict[str, Any]
    gpus: int
    levels: list[LevelMetrics] = field(default_factory=list)
    score: float | None = None
    slo_excess: float | None = None
    latency: float | None = None
    reason: TrialReason | None = None
    message: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether the server would not start (as opposed to starting and missing the SLO)."""
        return self.reason is not None and self.reason != TrialReason.SLO_VIOLATED


def climb(backend: Backend, config: dict[str, Any], *, trial_id: str) -> Climb:
    """Deploy ``config`` on ``backend`` and measure its whole ladder, in this process."""
    started = time.monotonic()
    spec = backend.spec
    server_config = spec.server_config(config)
    gpus = spec.gpus_needed(server_config)
    deployment = backend.deploy(server_config, trial_id=trial_id)
    try:
        backend.wait_ready(deployment, spec.backend.startup_timeout_s)
    except BackendError as e:
        reason = TrialReason(e.reason or TrialReason.STARTUP)
        return Climb(config, gpus, reason=reason, message=str(e),
                     seconds=time.monotonic() - started)
    ladder = objective.Ladder(spec.workload, spec.objective, gpus)
    while rung := ladder.next_rung():
        ladder.record(
            [
                backend.measure(
                    deployment, scenario=scenario, concurrency=concurrency, out_dir=backend.workdir
                )
                for scenario, concurrency in rung
            ]
        )
    score = ladder.score
    return Climb(
        config,
        gpus,
        levels=list(ladder.levels),
        score=score,
        slo_excess=ladder.slo_excess,
        latency=ladder.latency,
        reason=TrialReason.SLO_VIOLATED if score is None else None,
        message=ladder.missed() if score is None else None,
        seconds=time.monotonic() - started,
    )
