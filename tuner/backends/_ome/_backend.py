"""The ``ome`` backend's lifecycle: one OME InferenceService per trial, deployed to torn down."""

from __future__ import annotations

import functools
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from tuner.backends._ome import _argv, _benchmark_job, _diagnose, _render
from tuner.backends._ome._poll import Poll
from tuner.backends._ome._relay import Relay
from tuner.backends._ome._render import DEPLOYMENT_LABEL, DRY_RUN_TRIAL, ISVC_LABEL, STUDY_LABEL
from tuner.backends._registry import register
from tuner.backends.base import Backend, Deployment, deployment_name
from tuner.bench import genai
from tuner.exceptions import BackendError, DeployTimeoutError, NotSupportedError

if TYPE_CHECKING:
    from tuner.backends._ome._kube import Kube
    from tuner.bench.metrics import LevelMetrics
    from tuner.spec import StudySpec

__all__ = ["OmeBackend"]

logger = logging.getLogger(__name__)


@register("ome")
class OmeBackend(Backend):
    """One OME InferenceService per trial, in ``backend.namespace``.

    Deviations from the base contract:

    * Flags reach SGLang as ``engine.runner.args``, which the kubelet appends to the runtime's
      ``command``; SGLang's argparse keeps the last value of a repeated flag, so the trial's
      values win. This keeps the runtime's own words (image entrypoint, ``--model-path
      $(MODEL_PATH)``, parsers, ``--trust-remote-code``, ...) without the tuner having to read
      or copy them, and it lets ``describe`` render offline. A store-true switch the runtime
      sets cannot be turned off this way.
    * ``deploy`` returns an endpoint before the server exists: in the cluster the Service URL
      ``http://<name>.<namespace>.svc:<backend.port>``; outside it a local relay port of this
      process, which ``wait_ready`` points at ``status.url`` (or at a pod port-forward).
    * ``teardown`` waits until the trial's pods are gone, so freed GPUs are really free.
    * The runtime's ``startupProbe`` bounds a start-up as well as ``startup_timeout_s``: when
      the kubelet restarts the container for failing it, ``wait_ready`` raises
      :class:`~tuner.exceptions.DeployTimeoutError` (``preflight`` warns when the probe is
      the shorter of the two).
    * ``wait_ready`` refuses a pod whose command line OME rewrote (an AcceleratorClass's
      ``tensorParallelismOverride``): the trial would run flags other than those recorded.
    * With ``backend.benchmark_job``, ``measure`` runs each level as an OME BenchmarkJob.
    * ``export`` names the InferenceService after the study, and with ``runtime`` bakes the
      flags into a ClusterServingRuntime made from the study's runtime.
    * The ``kubernetes`` client is imported on the first call that talks to the cluster, so
      rendering works without it.
    """

    EXPORT_LANGUAGE = "yaml"

    def __init__(self, spec: StudySpec, *, study_id: str, workdir: Path) -> None:
        super().__init__(spec, study_id=study_id, workdir=workdir)
        self.backend = _render.ome_spec(spec)
        self._client: Kube | None = None
        self._relays: dict[str, Relay] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Clients, relays and locks stay in the process that made them; a copy builds its own.
        state = self.__dict__.copy()
        state.update(_client=None, _relays={}, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # --- manifests (no cluster needed, except for the base runtime) -----------------------

    def isvc_variables(
        self, config: Mapping[str, object], *, trial_id: str
    ) -> _render.IsvcVariables:
        """The template variables of one trial's InferenceService."""
        return _render.isvc_variables(self.spec, self.study_id, config, trial_id=trial_id)

    def flags(self, config: Mapping[str, object]) -> list[str]:
        """The words appended to the runtime's command for this config."""
        return _render.flags(self.spec, config)

    def render(self, config: Mapping[str, object], *, trial_id: str) -> str:
        """The InferenceService YAML of one trial, exactly as ``deploy`` applies it."""
        variables = self.isvc_variables(config, trial_id=trial_id)
        return _render.render("inference_service.yaml.j2", variables)

    def describe(self, config: dict[str, object]) -> str:
        """The InferenceService a trial with this config applies (named for a dry run)."""
        return self.render(config, trial_id=DRY_RUN_TRIAL)

    def render_benchmark_job(
        self, deployment: Deployment, *, scenario: str, concurrency: int
    ) -> str:
        """The BenchmarkJob YAML that measures one level, exactly as ``measure`` creates it."""
        variables = _render.benchmark_job_variables(
            self.spec, self.study_id, deployment, scenario=scenario, concurrency=concurrency
        )
        return _render.render("benchmark_job.yaml.j2", variables)

    def export(
        self,
        config: dict[str, object],
        *,
        runtime: bool = False,
        base_runtime: Mapping[str, Any] | None = None,
    ) -> str:
        """Manifests named after the study. ``runtime``: a ClusterServingRuntime with the flags
        baked into the base runtime's command (``base_runtime``, else read from the cluster),
        then an InferenceService that uses it.

        Raises:
            BackendError: the base runtime cannot be read from the cluster.
            NotSupportedError: the base runtime has no ``engineConfig.runner`` to bake into.
        """
        base = None
        if runtime:
            base = dict(base_runtime) if base_runtime is not None else self.base_runtime()
        return _render.manifests(self.spec, self.study_id, config, base_runtime=base)

    def base_runtime(self) -> dict[str, Any]:
        """The study's runtime as the cluster holds it (a ServingRuntime shadows the cluster's).

        Raises:
            BackendError: neither exists, or the cluster cannot be read.
        """
        return self._kube().runtime(self.backend.runtime)

    # --- the lifecycle ---------------------------------------------------------------------

    def preflight(self) -> None:
        """Read the study's runtime; warn when its startup probe restarts a server sooner
        than ``backend.startup_timeout_s`` gives up on it.

        Raises:
            BackendError: the runtime does not exist, or the cluster cannot be read.
            NotSupportedError: the workload has a prompt file and levels run as benchmark
                Jobs (in the cluster, where the file is not).
            SpecError: the prompt file cannot be read.
        """
        if self.spec.workload.dataset is not None and self.backend.benchmark_job is not None:
            raise NotSupportedError(
                "workload.dataset: backend.benchmark_job runs genai-bench in the cluster, "
                "which cannot read a local prompt file; drop benchmark_job (genai-bench then "
                "runs here) or use a D/N/U scenario (e.g. one `autotuner workload from-log` fits)"
            )
        super().preflight()
        budget = _diagnose.startup_probe_budget(self.base_runtime())
        timeout_s = self.backend.startup_timeout_s
        if budget is not None and budget[0] < timeout_s:
            logger.warning(
                "start-ups longer than %g s will fail as timeouts: %s",
                budget[0],
                _diagnose.probe_text(self.backend.runtime, budget, timeout_s),
            )

    def gpu_capacity(self) -> int:
        """Free ``nvidia.com/gpu`` on Ready, schedulable nodes that hold the model.

        A node holds the model when OME's model agent labelled it
        ``models.ome.io/clusterbasemodel.<name>=Ready`` (or the BaseModel form). Free means
        allocatable minus what the node's unfinished pods request; ``backend.gpus`` caps it.
        The sum spans nodes: a server still needs all its GPUs on one node.

        Raises:
            BackendError: no such node has a free GPU, or the cluster cannot be read.
        """
        kube = self._kube()
        keys = _render.model_label_keys(self.backend.base_model, self.backend.namespace)
        free = _diagnose.free_gpus(kube.nodes(), kube.unfinished_pods(), keys)
        logger.info("free GPUs per node holding %s: %s", self.backend.base_model, free)
        total = sum(max(0, n) for n in free.values())
        if self.backend.gpus is not None:
            total = min(total, self.backend.gpus)
        if total == 0:
            raise BackendError(
                f"no Ready, schedulable node labelled {keys[0]}=Ready has a free "
                f"{_render.GPU_KEY} (free per node: {free or 'no such node'}); check the model "
                f"with `kubectl get clusterbasemodel {self.backend.base_model}` and the GPUs "
                "with `kubectl describe nodes`",
                reason="startup",
            )
        return total

    def deploy(self, config: dict[str, object], *, trial_id: str) -> Deployment:
        """Create the trial's InferenceService (recreated if a same-named one is left over).

        Raises:
            BackendError: the API server refused it (namespace missing, RBAC, schema).
        """
        name = deployment_name(self.study_id, trial_id)
        body = yaml.safe_load(self.render(config, trial_id=trial_id))
        kube = self._kube()
        if not kube.create("inferenceservices", "InferenceService", body, exist_ok=True):
            # A retried trial: never patch a live isvc (its old pod would keep serving).
            logger.warning("InferenceService %s exists from an earlier attempt; recreating", name)
            self.teardown(name)
            kube.create("inferenceservices", "InferenceService", body)
        logger.info("created InferenceService %s/%s", kube.namespace, name)
        return Deployment(
            name=name,
            endpoint=self._endpoint(name),
            served_model=self.spec.model.name,
            labels=body["metadata"]["labels"],
            config=dict(config),
        )

    def wait_ready(self, deployment: Deployment, timeout_s: float) -> None:
        """Wait for the ``Ready`` condition and ``status.url``, then for ``/health``.

        Fails fast on a ``status.modelStatus.lastFailureInfo`` that no wait can cure, on a
        crashed or OOM-killed engine container (its log tail names why), on runtime
        validation events, on a pod running other flags than the trial's, and on a restart
        for a failed startup probe; the message carries the warning events of the isvc and
        its pods.

        Raises:
            BackendError: the server failed, or OME rewrote its flags (reason ``oom`` or
                ``startup``).
            DeployTimeoutError: it was not Ready in ``timeout_s``, or the runtime's startup
                probe gave up on it first.
        """
        name, namespace = deployment.name, self.backend.namespace
        kube = self._kube()
        poll = Poll(timeout_s)
        seen: set[str] = set()
        args = self.flags(deployment.config)
        while True:
            isvc = kube.read(
                "inferenceservices", name, action=f"read InferenceService {namespace}/{name}"
            )
            if isvc is None:
                raise BackendError(
                    f"InferenceService {namespace}/{name} was deleted while "
                    "it started; was the study stopped?",
                    reason="startup",
                )
            pods = self._engine_pods(name)
            hint = _diagnose.kubectl_hint(namespace, name)
            changed = _argv.mismatch(pods, args)
            if changed:
                raise BackendError(
                    f"InferenceService {namespace}/{name} runs {changed}: "
                    f"{_argv.why(self.backend.runtime)}; {hint}",
                    reason="startup",
                )
            status = isvc.get("status") or {}
            if _diagnose.is_ready(status) and status.get("url"):
                self._connect(deployment, str(status["url"]), poll)
                return
            events = kube.events()
            killed = _diagnose.probe_restart(pods, events)
            if killed:
                budget = _diagnose.startup_probe_budget(self.base_runtime())
                raise DeployTimeoutError(
                    f"InferenceService {namespace}/{name} was restarted by the kubelet for "
                    f"failing its startupProbe ({killed}); "
                    f"{_diagnose.probe_text(self.backend.runtime, budget, timeout_s)}; {hint}"
                )
            warnings = self._warnings(name, events, seen)
            problem = (
                _diagnose.failure(status)
                or _diagnose.pod_failure(pods)
                or _diagnose.fatal_event(warnings)
            )
            if problem:
                message, reason = problem
                raise BackendError(
                    f"InferenceService {namespace}/{name} failed: {message}"
                    f"{_diagnose.events_text(warnings)}; {hint}",
                    reason=reason,
                )
            if poll.expired:
                raise DeployTimeoutError(
                    f"InferenceService {namespace}/{name} was not Ready after {timeout_s:g} s "
                    f"({_diagnose.state_text(status)}){_diagnose.events_text(warnings)}; raise "
                    f"backend.startup_timeout_s if it was still loading, else {hint}"
                )
            poll.sleep()

    def teardown(self, name: str) -> None:
        """Delete the InferenceService (and its BenchmarkJobs); wait for its pods to go.

        Raises:
            BackendError: the pods were still there after ``backend.teardown_timeout_s``.
        """
        with self._lock:
            relay = self._relays.pop(name, None)
        if relay is not None:
            relay.close()
        kube = self._kube()
        if self.backend.benchmark_job is not None:
            kube.delete_labelled("benchmarkjobs", f"{DEPLOYMENT_LABEL}={name}")
        kube.delete("inferenceservices", name)
        poll = Poll(self.backend.teardown_timeout_s)
        while True:
            pods = self._engine_pods(name)
            if not pods and kube.read("inferenceservices", name) is None:
                logger.info("InferenceService %s/%s and its pods are gone", kube.namespace, name)
                return
            if poll.expired:
                left = ", ".join(p["metadata"]["name"] for p in pods) or "the isvc itself"
                raise BackendError(
                    f"InferenceService {kube.namespace}/{name} was deleted but {left} still "
                    f"existed after {self.backend.teardown_timeout_s:g} s, so its GPUs are "
                    "not free; is the OME controller running? Check `kubectl get pods -n "
                    f"{kube.namespace} -l {ISVC_LABEL}={name}`",
                    reason="timeout",
                )
            poll.sleep()

    def sweep(self) -> list[str]:
        """Tear down every InferenceService labelled with this study."""
        kube = self._kube()
        study = f"{STUDY_LABEL}={_render.label_value(self.study_id)}"
        names = kube.names("inferenceservices", study, what="InferenceServices")
        for name in names:
            self.teardown(name)
        if self.backend.benchmark_job is not None:  # jobs whose isvc went first
            kube.delete_labelled("benchmarkjobs", study)
        return names

    def exited(self, deployment: Deployment) -> str | None:
        """A container of the engine that terminated (crashed, OOM-killed) or restarted."""
        failure = self._pod_failure(deployment.name)
        return failure[0] if failure else None

    def measure(
        self,
        deployment: Deployment,
        *,
        scenario: str,
        concurrency: int,
        out_dir: Path,
        abort: Callable[[], str | None] | None = None,
    ) -> LevelMetrics:
        """Measure one level: genai-bench here, or an OME BenchmarkJob when configured.

        Raises:
            BenchmarkError: the benchmark (or the BenchmarkJob) failed, or left no result.
        """
        if self.backend.benchmark_job is None:
            return super().measure(
                deployment, scenario=scenario, concurrency=concurrency, out_dir=out_dir,
                abort=abort,
            )
        return _benchmark_job.measure(
            self._kube(), self.spec, self.study_id, deployment,
            scenario=scenario, concurrency=concurrency,
        )

    # --- reaching the server ---------------------------------------------------------------

    def _endpoint(self, name: str) -> str:
        if self._kube().in_cluster():
            return f"http://{name}.{self.backend.namespace}.svc:{self.backend.port}"
        relay = Relay(name)
        with self._lock:
            old = self._relays.pop(name, None)
            self._relays[name] = relay
        if old is not None:
            old.close()
        return f"http://127.0.0.1:{relay.port}"

    def _connect(self, deployment: Deployment, url: str, poll: Poll) -> None:
        """Point the trial's endpoint at its server, then wait for ``/health`` through it."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self._kube().in_cluster():
            service = f"{deployment.name}.{self.backend.namespace}.svc"
            if not (parts.hostname or "").startswith(service):
                raise BackendError(
                    f"InferenceService {deployment.name} serves at {url}, not at its Service "
                    f"{service}; set backend.in_cluster: false to reach that URL through a "
                    "relay",
                    reason="startup",
                )
            if port != self.backend.port:
                raise BackendError(
                    f"InferenceService {deployment.name} serves at {url}, not on port "
                    f"{self.backend.port}; set backend.port: {port}",
                    reason="startup",
                )
        else:
            with self._lock:
                relay = self._relays.get(deployment.name)
            if relay is None:
                raise BackendError(
                    f"no relay for {deployment.name} in this process: "
                    "wait_ready must run where deploy ran",
                    reason="startup",
                )
            forward = self.backend.port_forward
            if forward is None:
                forward = not _reachable(parts.hostname or "", port)
            if forward:
                relay.target(functools.partial(self._port_forward, deployment.name, port))
                logger.info("reaching %s through a port-forward", deployment.name)
            else:
                relay.target(
                    functools.partial(socket.create_connection, (parts.hostname, port), 10)
                )
        while problem := genai.probe(deployment.endpoint, timeout_s=10):
            if poll.expired:
                raise DeployTimeoutError(
                    f"InferenceService {deployment.name} is Ready but {problem}; check the "
                    f"network path to {url}, or set backend.port_forward"
                )
            poll.sleep()

    def _port_forward(self, name: str, port: int) -> socket.socket:
        """A socket to ``port`` of a running engine pod of the isvc, through the API server."""
        pods = self._engine_pods(name, running_only=True)
        if not pods:
            raise OSError(f"no running pod of InferenceService {name} to port-forward to")
        return self._kube().port_forward(pods[0]["metadata"]["name"], port)

    # --- reading state ---------------------------------------------------------------------

    def _engine_pods(self, name: str, *, running_only: bool = False) -> list[dict[str, Any]]:
        """The pods of an InferenceService (only the Running ones, if asked)."""
        return self._kube().pods(
            label_selector=f"{ISVC_LABEL}={name}",
            field_selector="status.phase=Running" if running_only else None,
        )

    def _pod_failure(self, name: str) -> tuple[str, str] | None:
        """Why the isvc's engine container cannot start, when that is already certain."""
        return _diagnose.pod_failure(self._engine_pods(name))

    def _warnings(
        self, name: str, events: list[dict[str, Any]], seen: set[str]
    ) -> list[str]:
        """Warning events of the isvc and its pods, oldest first; logs the new ones."""
        found = _diagnose.warning_events(events, name)
        for _, text, uid, target in found:
            if uid not in seen:
                seen.add(uid)
                logger.warning("%s: %s", target, text)
        return [text for _, text, _, _ in found]

    def _kube(self) -> Kube:
        """The cluster's API; the ``kubernetes`` client is imported here, on first use."""
        if self._client is None:
            from tuner.backends._ome._kube import Kube

            self._client = Kube(self.backend)
        return self._client


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True
