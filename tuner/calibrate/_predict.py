"""Predictions of measured levels by the twin's estimator, under candidate fact factors."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tuner import backends
from tuner.backends.base import Backend, Deployment
from tuner.bench.metrics import LevelMetrics
from tuner.calibrate._observations import Observation, StudyData, study_gpu
from tuner.exceptions import BackendError
from tuner.spec import EstimateBackendSpec

__all__ = ["Predictor"]


class Predictor:
    """Predicts each measured level with the ``estimate`` backend, as a pre-screen would.

    Each level is estimated with the trial's own flags, scenario and concurrency, on the
    GPU type the study ran on, with as many requests as a typical level of the study
    completed, at most ``max_requests`` (the estimator's cost grows with them; the same seed
    every time, so two factor sets differ only by the factors). Levels the estimator cannot
    predict (a config it thinks would not start) are dropped once, before the fit: factors
    change speeds, never whether a server starts.

    Args:
        studies: The measured studies.
        gpu: GPU type for studies whose backend does not name it.
        max_requests: Requests per estimated level, at most.
        max_levels: Levels predicted, at most (evenly chosen among the predictable ones).
        workdir: Folder for the estimate backend (it writes nothing).
    """

    def __init__(
        self,
        studies: list[StudyData],
        *,
        gpu: str | None,
        max_requests: int,
        max_levels: int,
        workdir: Path,
    ) -> None:
        self._work: list[tuple[Backend, Deployment, Observation]] = []
        self.dropped: list[tuple[Observation, str]] = []
        for study in studies:
            backend = _estimate_backend(study, gpu, max_requests, workdir)
            for obs in study.observations:
                deployment = backend.deploy(obs.server_args, trial_id=obs.trial_id)
                try:
                    backend.wait_ready(deployment, 0.0)
                except BackendError as e:
                    self.dropped.append((obs, str(e)))
                    continue
                self._work.append((backend, deployment, obs))
        self.predictable = len(self._work)
        if len(self._work) > max_levels:
            # Evenly over the studies and trials, in their order: the fit's cost stays bounded.
            picks = np.linspace(0, len(self._work) - 1, max_levels).round().astype(int)
            self._work = [self._work[i] for i in picks]
        self._workdir = workdir

    @property
    def observations(self) -> list[Observation]:
        """The levels that are predicted, in order."""
        return [obs for _, _, obs in self._work]

    def predict(self, factors: Mapping[str, float]) -> list[LevelMetrics]:
        """The estimator's figures of every observation, with the facts scaled by ``factors``.

        Args:
            factors: Fact name -> factor (see :class:`twin.Profile`).
        """
        import twin

        with twin.using_profile(twin.Profile(factors=dict(factors))):
            return [
                backend.measure(
                    deployment,
                    scenario=obs.level.scenario,
                    concurrency=obs.level.concurrency,
                    out_dir=self._workdir,
                )
                for backend, deployment, obs in self._work
            ]


def _estimate_backend(
    study: StudyData, gpu: str | None, max_requests: int, workdir: Path
) -> Backend:
    # The study's spec with the estimate backend in place of its own, as the pre-screen
    # does; its workload keeps the scenarios (and prompt file), with fewer requests.
    # genai-bench may complete more requests than asked (or fewer, on its time limit): as
    # many as a typical measured level, so both sides weigh the ramp-up alike.
    spec = study.spec
    gpus = max([o.gpus for o in study.observations] + [1])
    typical = statistics.median_low([o.level.num_completed for o in study.observations] or [1])
    workload = spec.workload.model_copy(
        update={"max_requests_per_level": max(1, min(typical, max_requests))}
    )
    estimate_spec = spec.model_copy(
        update={
            "backend": EstimateBackendSpec(gpu=study_gpu(spec, gpu), gpus=gpus),
            "workload": workload,
        }
    )
    return backends.make(estimate_spec, study_id=study.study_id, workdir=workdir)
