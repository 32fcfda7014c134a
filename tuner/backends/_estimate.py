"""``estimate``: the twin's estimator in the trial process: no server, no HTTP, no genai-bench."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tuner import serverargs
from tuner.backends._registry import register
from tuner.backends.base import Backend, Deployment, deployment_name
from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import BackendError, SpecError
from tuner.spec import EstimateBackendSpec
from tuner.workload import dataset_lengths

if TYPE_CHECKING:
    import twin
    from tuner.bench.warmup import WarmUp

__all__ = ["EstimateBackend", "read_profile"]


def read_profile(path: str | None, field: str) -> twin.Profile | None:
    """The fact profile a spec field names, read and checked before the first trial.

    Args:
        path: The field's value (an absolute path), or None.
        field: The field's path in the spec, for the message (``backend.profile``).

    Returns:
        The profile, or None when the field is unset.

    Raises:
        SpecError: The file cannot be read or is not a valid profile.
    """
    if path is None:
        return None
    import twin

    try:
        return twin.load_profile(path)
    except ValueError as e:
        raise SpecError(
            f"{field}: {e}; write one with `autotuner calibrate`, or unset {field}",
            [(field, str(e))],
        ) from e


@register("estimate")
class EstimateBackend(Backend):
    """Deviations: ``deploy`` starts nothing and ``wait_ready`` only runs the twin's start-up
    checks (memory fit, TP split, GPU count), which fail with the same reasons a server would;
    ``measure`` simulates the level in virtual time (the scenario ``dataset`` draws the prompt
    file's token lengths, counted with the study's tokenizer). Nothing runs, so teardown has
    nothing to do, and a study climbs these trials in its own process (``IN_PROCESS``).
    """

    IN_PROCESS = True

    def _backend(self) -> EstimateBackendSpec:
        assert isinstance(self.spec.backend, EstimateBackendSpec)
        return self.spec.backend

    def gpu_capacity(self) -> int:
        return self._backend().gpus

    def preflight(self) -> None:
        super().preflight()
        read_profile(self._backend().profile, "backend.profile")

    @functools.cached_property
    def _profile(self) -> twin.Profile | None:
        # Read once per backend: a pre-screen estimates hundreds of levels with it.
        return read_profile(self._backend().profile, "backend.profile")

    def _server_args(self, config: dict[str, object]) -> dict[str, object]:
        return {"model_path": self.spec.model.model_path, **config}

    def deploy(self, config: dict[str, object], *, trial_id: str) -> Deployment:
        return Deployment(
            name=deployment_name(self.study_id, trial_id),
            endpoint="estimate:",
            served_model=self.spec.model.name,
            labels={"study": self.study_id, "trial": trial_id},
            config=self._server_args(config),
        )

    def wait_ready(self, deployment: Deployment, timeout_s: float) -> None:
        import twin

        try:
            twin.resolve_server_args(
                deployment.config, gpu=self._backend().gpu, num_gpus=self._backend().gpus
            )
        except twin.StartupError as e:
            raise BackendError(
                f"the twin predicts this server fails to start: {e}", reason=e.kind
            ) from e
        except ValueError as e:
            raise BackendError(f"invalid server flags: {e}", reason="startup") from e

    def teardown(self, name: str) -> None:
        return None

    def describe(self, config: dict[str, object]) -> str:
        # What the estimate stands for: the real server with these flags.
        model = self.spec.model
        return shlex.join(
            [
                "python",
                "-m",
                "sglang.launch_server",
                "--model-path",
                model.model_path,
                "--served-model-name",
                model.name,
                *serverargs.to_argv(config, self.spec.sglang_version),
            ]
        )

    def alive(self, deployment: Deployment) -> str | None:
        return None

    def warm_up(
        self, deployment: Deployment, prompt_lengths: list[int], *, timeout_s: float
    ) -> WarmUp | None:
        return None  # the estimator has no kernels to compile

    def measure(
        self,
        deployment: Deployment,
        *,
        scenario: str,
        concurrency: int,
        out_dir: Path,
        abort: Callable[[], str | None] | None = None,
    ) -> LevelMetrics:
        del abort  # an estimate runs in-process in milliseconds: nothing to watch
        import twin

        lengths, ignore_eos = None, True
        if scenario == "dataset":
            # genai-bench's dataset mode: the file's prompts, no max_tokens, no ignore_eos.
            lengths, ignore_eos = dataset_lengths(self.spec), False
        result = twin.estimate(
            deployment.config,
            gpu=self._backend().gpu,
            scenario=scenario,
            concurrency=concurrency,
            max_requests=self.spec.workload.max_requests_per_level,
            num_gpus=self._backend().gpus,
            lengths=lengths,
            ignore_eos=ignore_eos,
            profile=self._profile,
            spawn_rate=self.spec.workload.spawn_rate,
        )
        return LevelMetrics.from_genai_bench(result["aggregated_metrics"])
