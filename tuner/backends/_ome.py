"""The ``ome`` backend: one OME InferenceService per trial on a Kubernetes cluster.

Manifests render from ``templates/*.yaml.j2`` (one typed variables dict per object, Jinja2 with
``StrictUndefined``); the official ``kubernetes`` client is imported here and nowhere else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast
from urllib.parse import urlsplit

import jinja2
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME
from kubernetes.stream import portforward

from tuner import serverargs
from tuner.backends._registry import register
from tuner.backends.base import Backend, Deployment, deployment_name
from tuner.bench import genai
from tuner.bench.metrics import LevelMetrics
from tuner.exceptions import (
    BackendError,
    BenchmarkError,
    DeployTimeoutError,
    NotSupportedError,
    SpecError,
)
from tuner.spec import OmeBackendSpec

if TYPE_CHECKING:
    from tuner.spec import StudySpec

__all__ = [
    "BenchmarkJobVariables",
    "IsvcVariables",
    "OmeBackend",
    "RuntimeVariables",
    "model_label_keys",
]

logger = logging.getLogger(__name__)

GROUP = "ome.io"
VERSION = "v1beta1"
STUDY_LABEL = "autotuner.ome.io/study"
TRIAL_LABEL = "autotuner.ome.io/trial"
# BenchmarkJobs carry the name of the isvc they load, so teardown finds them from that name.
DEPLOYMENT_LABEL = "autotuner.ome.io/deployment"
ISVC_LABEL = "ome.io/inferenceservice"
GPU_KEY = "nvidia.com/gpu"
# The trial id ``describe`` and ``render`` use: a dry run has no trial of its own.
DRY_RUN_TRIAL = "dry-run"
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"

# Polls start fast (a twin is up in a second) and slow down to spare the API server.
_POLL_FIRST_S = 0.1
_POLL_MAX_S = 2.0
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# lastFailureInfo reasons that a wait cannot cure: the model is not coming, or the spec is wrong.
# (BaseModelNotReady is left out: the model agent may still be downloading the weights.)
_FATAL_FAILURES = frozenset(
    {
        "BaseModelNotFound",
        "ModelLoadFailed",
        "RuntimeUnhealthy",
        "RuntimeDisabled",
        "NoSupportingRuntime",
        "RuntimeNotRecognized",
        "InvalidPredictorSpec",
    }
)
# Warning events after which the reconcile only retries the same thing: fail the trial now.
_FATAL_EVENTS = frozenset({"RuntimeValidationError", "InvalidSpec"})
# Container waiting reasons that never clear without a change to the manifest.
_FATAL_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"})
# Mirrors OME's pkg/constants: label names of at most 49 characters, with an 8-hex hash prefix.
_MAX_LABEL_NAME = 49
_HASH_PREFIX = 8


class IsvcVariables(TypedDict):
    """What ``templates/inference_service.yaml.j2`` renders from."""

    name: str
    namespace: str
    labels: dict[str, str]
    model: str
    runtime: str
    image: str | None
    args: list[str]
    gpus: int


class RuntimeVariables(TypedDict):
    """What ``templates/cluster_serving_runtime.yaml.j2`` renders from.

    ``base_*`` are the parts of the base runtime kept as they are (JSON objects).
    """

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    base_spec: dict[str, Any]
    base_engine: dict[str, Any]
    base_runner: dict[str, Any]
    command: list[str]
    resources: dict[str, Any]


class BenchmarkJobVariables(TypedDict):
    """What ``templates/benchmark_job.yaml.j2`` renders from."""

    name: str
    namespace: str
    labels: dict[str, str]
    isvc: str
    scenario: str
    concurrency: int
    max_minutes: int
    max_requests: int
    output_uri: str
    folder: str
    image: str | None


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
    * With ``backend.benchmark_job``, ``measure`` runs each level as an OME BenchmarkJob.
    """

    def __init__(self, spec: StudySpec, *, study_id: str, workdir: Path) -> None:
        super().__init__(spec, study_id=study_id, workdir=workdir)
        if not isinstance(spec.backend, OmeBackendSpec):
            raise SpecError(f"backend.kind: the ome backend got '{spec.backend.kind}'")
        self.backend: OmeBackendSpec = spec.backend
        self._api: k8s.ApiClient | None = None
        self._relays: dict[str, _Relay] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Clients, relays and locks stay in the process that made them; a copy builds its own.
        state = self.__dict__.copy()
        state.update(_api=None, _relays={}, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # --- rendering -----------------------------------------------------------------------

    def isvc_variables(self, config: Mapping[str, object], *, trial_id: str) -> IsvcVariables:
        """The template variables of one trial's InferenceService."""
        return IsvcVariables(
            name=deployment_name(self.study_id, trial_id),
            namespace=self.backend.namespace,
            labels=self._labels(trial_id),
            model=self.backend.base_model,
            runtime=self.backend.runtime,
            image=self.backend.image,
            args=self.flags(config),
            gpus=self.spec.gpus_needed(dict(config)),
        )

    def flags(self, config: Mapping[str, object]) -> list[str]:
        """The words appended to the runtime's command for this config.

        ``tp_size`` and ``dp_size`` are always given, so SGLang uses exactly the GPUs the pod
        requests whatever the runtime's own command says; ``--served-model-name`` is always
        given, so requests know the ``model`` to send.
        """
        flags = {"tp_size": 1, "dp_size": 1, **self.spec.fixed, **config}
        return serverargs.to_argv(flags) + ["--served-model-name", self.spec.model.name]

    def render(self, config: Mapping[str, object], *, trial_id: str) -> str:
        """The InferenceService YAML of one trial, exactly as ``deploy`` applies it."""
        return _render("inference_service.yaml.j2", self.isvc_variables(config, trial_id=trial_id))

    def describe(self, config: dict[str, object]) -> str:
        """The InferenceService a trial with this config applies (named for a dry run)."""
        return self.render(config, trial_id=DRY_RUN_TRIAL)

    def export_manifests(
        self,
        config: Mapping[str, object],
        *,
        runtime: bool,
        base_runtime: Mapping[str, Any] | None = None,
    ) -> str:
        """The winning configuration as manifests to apply.

        Args:
            config: the winner's full flag set.
            runtime: False: one InferenceService on the study's runtime with the flags as
                ``runner.args``, as measured. True: a ClusterServingRuntime with the flags baked
                into its command, then an InferenceService that uses it.
            base_runtime: the study's runtime object; default: read from the cluster.

        Raises:
            BackendError: the base runtime cannot be read from the cluster.
            NotSupportedError: the base runtime has no ``engineConfig.runner`` to bake into.
        """
        isvc = self.isvc_variables(config, trial_id=DRY_RUN_TRIAL)
        # Named after the study, for production: not a trial, so no trial label.
        isvc["name"] = _k8s_name(self.spec.name)
        isvc["labels"] = {STUDY_LABEL: _label_value(self.study_id)}
        if not runtime:
            return _render("inference_service.yaml.j2", isvc)
        base = dict(base_runtime) if base_runtime is not None else self.base_runtime()
        variables = self.runtime_variables(config, base)
        # The flags and the image now live in the runtime.
        isvc["runtime"], isvc["args"], isvc["image"] = variables["name"], [], None
        return (
            _render("cluster_serving_runtime.yaml.j2", variables)
            + "---\n"
            + _render("inference_service.yaml.j2", isvc)
        )

    def runtime_variables(
        self, config: Mapping[str, object], base: Mapping[str, Any]
    ) -> RuntimeVariables:
        """The template variables of the winner's ClusterServingRuntime, from the base one.

        Raises:
            NotSupportedError: the base runtime has no ``engineConfig.runner.command``.
        """
        base_name = str((base.get("metadata") or {}).get("name") or self.backend.runtime)
        spec = dict(base.get("spec") or {})
        engine = dict(spec.pop("engineConfig", None) or {})
        runner = dict(engine.pop("runner", None) or {})
        base_command = [*(runner.pop("command", None) or []), *(runner.pop("args", None) or [])]
        if not base_command:
            raise NotSupportedError(
                f"runtime '{base_name}' has no engineConfig.runner.command to bake the flags "
                "into (legacy `containers` runtimes are not supported); export without "
                "--runtime and apply the InferenceService instead"
            )
        resources = dict(runner.pop("resources", None) or {})
        runner.pop("name", None)
        gpus = str(self.spec.gpus_needed(dict(config)))
        for side in ("requests", "limits"):
            resources[side] = {**(resources.get(side) or {}), GPU_KEY: gpus}
        image = self.backend.image
        if image:
            runner["image"] = image
        return RuntimeVariables(
            name=f"{base_name}-{_k8s_name(self.spec.name)}"[:253].rstrip("-."),
            labels={STUDY_LABEL: _label_value(self.study_id)},
            annotations={
                "autotuner.ome.io/base-runtime": base_name,
                "autotuner.ome.io/flags": json.dumps(dict(config), sort_keys=True),
            },
            base_spec=spec,
            base_engine=engine,
            base_runner=runner,
            command=base_command + self.flags(config),
            resources=resources,
        )

    def base_runtime(self) -> dict[str, Any]:
        """The study's runtime as the cluster holds it.

        A namespaced ServingRuntime of that name shadows the ClusterServingRuntime, as in OME.

        Raises:
            BackendError: neither exists, or the cluster cannot be read.
        """
        custom = k8s.CustomObjectsApi(self._client())
        name, namespace = self.backend.runtime, self.backend.namespace
        try:
            return cast(
                dict[str, Any],
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "servingruntimes", name
                ),
            )
        except ApiException as e:
            if e.status not in (403, 404):
                raise _api_error(e, f"read ServingRuntime {namespace}/{name}") from e
        try:
            return cast(
                dict[str, Any],
                custom.get_cluster_custom_object(GROUP, VERSION, "clusterservingruntimes", name),
            )
        except ApiException as e:
            raise _api_error(e, f"read ClusterServingRuntime {name}") from e

    # --- capacity ------------------------------------------------------------------------

    def gpu_capacity(self) -> int:
        """Free ``nvidia.com/gpu`` on Ready, schedulable nodes that hold the model.

        A node holds the model when OME's model agent labelled it
        ``models.ome.io/clusterbasemodel.<name>=Ready`` (or the BaseModel form). Free means
        allocatable minus what the node's unfinished pods request; ``backend.gpus`` caps it.
        The sum spans nodes: a server still needs all its GPUs on one node.

        Raises:
            BackendError: no such node has a free GPU, or the cluster cannot be read.
        """
        core = k8s.CoreV1Api(self._client())
        nodes = _items(self._call("list nodes", core.list_node, _preload_content=False))
        pods = _items(
            self._call(
                "list pods",
                core.list_pod_for_all_namespaces,
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
                _preload_content=False,
            )
        )
        keys = model_label_keys(self.backend.base_model, self.backend.namespace)
        free: dict[str, int] = {}
        for node in nodes:
            labels = node["metadata"].get("labels") or {}
            if not any(labels.get(key) == "Ready" for key in keys) or not _schedulable(node):
                continue
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            free[node["metadata"]["name"]] = _quantity(allocatable.get(GPU_KEY))
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name in free:
                free[node_name] -= _pod_gpus(pod)
        logger.info("free GPUs per node holding %s: %s", self.backend.base_model, free)
        total = sum(max(0, n) for n in free.values())
        if self.backend.gpus is not None:
            total = min(total, self.backend.gpus)
        if total == 0:
            raise BackendError(
                f"no Ready, schedulable node labelled {keys[0]}=Ready has a free {GPU_KEY} "
                f"(free per node: {free or 'no such node'}); check the model with `kubectl get "
                f"clusterbasemodel {self.backend.base_model}` and the GPUs with `kubectl "
                "describe nodes`",
                reason="startup",
            )
        return total

    # --- lifecycle -----------------------------------------------------------------------

    def deploy(self, config: dict[str, object], *, trial_id: str) -> Deployment:
        """Create the trial's InferenceService (recreated if a same-named one is left over).

        Raises:
            BackendError: the API server refused it (namespace missing, RBAC, schema).
        """
        name = deployment_name(self.study_id, trial_id)
        body = yaml.safe_load(self.render(config, trial_id=trial_id))
        custom = k8s.CustomObjectsApi(self._client())
        namespace = self.backend.namespace
        try:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "inferenceservices", body
            )
        except ApiException as e:
            if e.status != 409:
                raise _api_error(e, f"create InferenceService {namespace}/{name}") from e
            # A retried trial: never patch a live isvc (its old pod would keep serving).
            logger.warning("InferenceService %s exists from an earlier attempt; recreating", name)
            self.teardown(name)
            self._call(
                f"create InferenceService {namespace}/{name}",
                custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "inferenceservices",
                body,
            )
        logger.info("created InferenceService %s/%s", namespace, name)
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
        crashed or OOM-killed engine container and on runtime validation events; the message
        carries the warning events of the isvc and its pods.

        Raises:
            BackendError: the server failed (reason ``oom`` or ``startup``).
            DeployTimeoutError: it was not Ready in ``timeout_s``.
        """
        name, namespace = deployment.name, self.backend.namespace
        custom = k8s.CustomObjectsApi(self._client())
        poll = _Poll(timeout_s)
        seen: set[str] = set()
        while True:
            try:
                isvc = cast(
                    dict[str, Any],
                    custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, "inferenceservices", name
                    ),
                )
            except ApiException as e:
                if e.status == 404:
                    raise BackendError(
                        f"InferenceService {namespace}/{name} was deleted while "
                        "it started; was the study stopped?",
                        reason="startup",
                    ) from e
                raise _api_error(e, f"read InferenceService {namespace}/{name}") from e
            status = isvc.get("status") or {}
            if _is_ready(status) and status.get("url"):
                self._connect(deployment, str(status["url"]), poll)
                return
            warnings = self._warnings(name, seen)
            if problem := _failure(status) or self._pod_failure(name) or _fatal_event(warnings):
                message, reason = problem
                raise BackendError(
                    f"InferenceService {namespace}/{name} failed: {message}"
                    f"{_events_text(warnings)}; {_kubectl_hint(namespace, name)}",
                    reason=reason,
                )
            if poll.expired:
                raise DeployTimeoutError(
                    f"InferenceService {namespace}/{name} was not Ready after {timeout_s:g} s "
                    f"({_state_text(status)}){_events_text(warnings)}; raise "
                    f"backend.startup_timeout_s if it was still loading, else "
                    f"{_kubectl_hint(namespace, name)}"
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
        namespace = self.backend.namespace
        core = k8s.CoreV1Api(self._client())
        if self.backend.benchmark_job is not None:
            self._delete_labelled("benchmarkjobs", f"{DEPLOYMENT_LABEL}={name}")
        self._delete("inferenceservices", name)
        poll = _Poll(self.backend.teardown_timeout_s)
        while True:
            pods = _items(
                self._call(
                    "list pods",
                    core.list_namespaced_pod,
                    namespace,
                    label_selector=f"{ISVC_LABEL}={name}",
                    _preload_content=False,
                )
            )
            if not pods and not self._exists("inferenceservices", name):
                logger.info("InferenceService %s/%s and its pods are gone", namespace, name)
                return
            if poll.expired:
                left = ", ".join(p["metadata"]["name"] for p in pods) or "the isvc itself"
                raise BackendError(
                    f"InferenceService {namespace}/{name} was deleted but {left} still "
                    f"existed after {self.backend.teardown_timeout_s:g} s, so its GPUs are "
                    "not free; is the OME controller running? Check `kubectl get pods -n "
                    f"{namespace} -l {ISVC_LABEL}={name}`",
                    reason="timeout",
                )
            poll.sleep()

    def sweep(self) -> list[str]:
        """Tear down every InferenceService labelled with this study."""
        custom = k8s.CustomObjectsApi(self._client())
        found = self._call(
            "list InferenceServices",
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.backend.namespace,
            "inferenceservices",
            label_selector=f"{STUDY_LABEL}={_label_value(self.study_id)}",
        )
        names = [item["metadata"]["name"] for item in found.get("items", [])]
        for name in names:
            self.teardown(name)
        if self.backend.benchmark_job is not None:  # jobs whose isvc went first
            self._delete_labelled("benchmarkjobs", f"{STUDY_LABEL}={_label_value(self.study_id)}")
        return names

    # --- measuring with BenchmarkJobs ----------------------------------------------------

    def benchmark_job_variables(
        self, deployment: Deployment, *, scenario: str, concurrency: int
    ) -> BenchmarkJobVariables:
        """The template variables of the BenchmarkJob that measures one level.

        Raises:
            SpecError: ``backend.benchmark_job`` is not set.
        """
        job = self.backend.benchmark_job
        if job is None:
            raise SpecError("backend.benchmark_job: not set; BenchmarkJob mode needs a PVC")
        digest = hashlib.sha256(f"{scenario}|{concurrency}".encode()).hexdigest()[:6]
        suffix = f"-bj{digest}"
        name = deployment.name[: 63 - len(suffix)].rstrip("-") + suffix
        workload = self.spec.workload
        return BenchmarkJobVariables(
            name=name,
            namespace=self.backend.namespace,
            labels={**deployment.labels, DEPLOYMENT_LABEL: deployment.name},
            isvc=deployment.name,
            scenario=scenario,
            concurrency=concurrency,
            max_minutes=-(-workload.max_seconds_per_level // 60),
            max_requests=workload.max_requests_per_level,
            output_uri=f"pvc://{job.pvc}/{self._results_subpath()}",
            folder=name,
            image=job.image,
        )

    def render_benchmark_job(
        self, deployment: Deployment, *, scenario: str, concurrency: int
    ) -> str:
        """The BenchmarkJob YAML that measures one level, exactly as ``measure`` creates it."""
        return _render(
            "benchmark_job.yaml.j2",
            self.benchmark_job_variables(deployment, scenario=scenario, concurrency=concurrency),
        )

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

        A BenchmarkJob writes to the PVC of ``backend.benchmark_job``, which this process
        must see at ``mount_path``. Limits of OME's BenchmarkJob (v0.1.5): it sends
        ``model: vllm-model`` (SGLang serves it anyway), tokenizes with the model's files on
        the node, counts time in whole minutes, and starts a new pod per level.

        Raises:
            BenchmarkError: the job failed, timed out or left no result.
        """
        job = self.backend.benchmark_job
        if job is None:
            return super().measure(
                deployment,
                scenario=scenario,
                concurrency=concurrency,
                out_dir=out_dir,
                abort=abort,
            )
        variables = self.benchmark_job_variables(
            deployment, scenario=scenario, concurrency=concurrency
        )
        name, namespace = variables["name"], variables["namespace"]
        body = yaml.safe_load(
            self.render_benchmark_job(deployment, scenario=scenario, concurrency=concurrency)
        )
        results_dir = Path(job.mount_path) / self._results_subpath() / variables["folder"]
        shutil.rmtree(results_dir, ignore_errors=True)  # a rerun must not read an old result
        custom = k8s.CustomObjectsApi(self._client())
        try:
            self._delete("benchmarkjobs", name)  # a BenchmarkJob runs once: recreate to rerun
            self._wait_gone("benchmarkjobs", name)
            self._call(
                f"create BenchmarkJob {namespace}/{name}",
                custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "benchmarkjobs",
                body,
            )
            try:
                self._wait_benchmark(name, variables["max_minutes"] * 60 + job.timeout_s)
            finally:
                self._delete("benchmarkjobs", name)
        except BackendError as e:
            raise BenchmarkError(str(e)) from e
        results = sorted(results_dir.glob(f"*_num_concurrency_{concurrency}_time_*s.json"))
        if not results:
            raise BenchmarkError(
                f"BenchmarkJob {namespace}/{name} completed but left no result in "
                f"{results_dir}; check that {job.mount_path} mounts PVC {job.pvc} here, and "
                f"see `kubectl logs -n {namespace} -l job-name={name}`"
            )
        data = json.loads(results[-1].read_text())
        return LevelMetrics.from_genai_bench(
            data["aggregated_metrics"],
            time_unit=data.get("_time_unit", "s"),
            time_scale=deployment.time_scale,
        )

    def _wait_benchmark(self, name: str, timeout_s: float) -> None:
        """Wait for the BenchmarkJob to complete.

        Raises:
            BenchmarkError: it failed or timed out.
        """
        custom = k8s.CustomObjectsApi(self._client())
        namespace = self.backend.namespace
        poll = _Poll(timeout_s)
        while True:
            job = self._call(
                f"read BenchmarkJob {namespace}/{name}",
                custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "benchmarkjobs",
                name,
            )
            status = job.get("status") or {}
            state = str(status.get("state") or "Pending")
            if state == "Completed":
                return
            if state == "Failed":
                raise BenchmarkError(
                    f"BenchmarkJob {namespace}/{name} failed: "
                    f"{status.get('failureMessage') or 'no message'}; see `kubectl logs -n "
                    f"{namespace} -l job-name={name}`"
                )
            if poll.expired:
                raise BenchmarkError(
                    f"BenchmarkJob {namespace}/{name} was still {state} after {timeout_s:g} s; "
                    f"see `kubectl describe benchmarkjob -n {namespace} {name}` or raise "
                    "backend.benchmark_job.timeout_s"
                )
            poll.sleep()

    def _results_subpath(self) -> str:
        return f"autotuner/{_k8s_name(self.study_id)}"

    # --- reaching the server -------------------------------------------------------------

    def _in_cluster(self) -> bool:
        if self.backend.in_cluster is not None:
            return self.backend.in_cluster
        return _inside_pod()

    def _endpoint(self, name: str) -> str:
        if self._in_cluster():
            return f"http://{name}.{self.backend.namespace}.svc:{self.backend.port}"
        relay = _Relay(name)
        with self._lock:
            old = self._relays.pop(name, None)
            self._relays[name] = relay
        if old is not None:
            old.close()
        return f"http://127.0.0.1:{relay.port}"

    def _connect(self, deployment: Deployment, url: str, poll: _Poll) -> None:
        """Point the trial's endpoint at its server, then wait for ``/health`` through it."""
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self._in_cluster():
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
        core = k8s.CoreV1Api(self._client())
        pods = self._engine_pods(name, running_only=True)
        if not pods:
            raise OSError(f"no running pod of InferenceService {name} to port-forward to")
        forward = portforward(
            core.connect_get_namespaced_pod_portforward,
            pods[0]["metadata"]["name"],
            self.backend.namespace,
            ports=str(port),
        )
        remote: socket.socket = forward.socket(port)
        remote.setblocking(True)
        return remote

    # --- reading state -------------------------------------------------------------------

    def _engine_pods(self, name: str, *, running_only: bool = False) -> list[dict[str, Any]]:
        """The pods of an InferenceService (only the Running ones, if asked)."""
        core = k8s.CoreV1Api(self._client())
        return _items(
            self._call(
                "list pods",
                core.list_namespaced_pod,
                self.backend.namespace,
                label_selector=f"{ISVC_LABEL}={name}",
                field_selector="status.phase=Running" if running_only else None,
                _preload_content=False,
            )
        )

    def _pod_failure(self, name: str) -> tuple[str, str] | None:
        """Why the isvc's engine container cannot start, when that is already certain."""
        pods = self._engine_pods(name)
        for pod in pods:
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (status.get("state") or {}).get("waiting") or {}
                ended = (
                    (status.get("state") or {}).get("terminated")
                    or (status.get("lastState") or {}).get("terminated")
                    or {}
                )
                if ended and (ended.get("reason") == "OOMKilled" or ended.get("exitCode")):
                    text = (
                        f"container {status.get('name')} exited with code "
                        f"{ended.get('exitCode')} ({ended.get('reason') or 'Error'}): "
                        f"{(ended.get('message') or '').strip()[-500:]}"
                    )
                    return text, _reason_class(text)
                if waiting.get("reason") in _FATAL_WAITING:
                    return f"{waiting['reason']}: {waiting.get('message', '')}", "startup"
        return None

    def _warnings(self, name: str, seen: set[str]) -> list[str]:
        """Warning events of the isvc and its pods, oldest first; logs the new ones."""
        core = k8s.CoreV1Api(self._client())
        events = _items(
            self._call(
                "list events",
                core.list_namespaced_event,
                self.backend.namespace,
                _preload_content=False,
            )
        )
        found: list[tuple[str, str, str]] = []
        for event in events:
            involved = event.get("involvedObject") or {}
            target = str(involved.get("name") or "")
            if event.get("type") != "Warning":
                continue
            if target != name and not target.startswith(f"{name}-engine-"):
                continue
            when = str(event.get("lastTimestamp") or event.get("eventTime") or "")
            text = f"{event.get('reason')}: {event.get('message', '').strip()}"
            found.append((when, text, str(event["metadata"].get("uid") or text)))
            if found[-1][2] not in seen:
                seen.add(found[-1][2])
                logger.warning("%s: %s", target, text)
        return [text for _, text, _ in sorted(found)]

    def _exists(self, plural: str, name: str) -> bool:
        custom = k8s.CustomObjectsApi(self._client())
        try:
            custom.get_namespaced_custom_object(
                GROUP, VERSION, self.backend.namespace, plural, name
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise _api_error(e, f"read {plural} {self.backend.namespace}/{name}") from e
        return True

    def _delete(self, plural: str, name: str) -> None:
        custom = k8s.CustomObjectsApi(self._client())
        try:
            custom.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                self.backend.namespace,
                plural,
                name,
                propagation_policy="Background",
            )
        except ApiException as e:
            if e.status != 404:
                raise _api_error(e, f"delete {plural} {self.backend.namespace}/{name}") from e

    def _delete_labelled(self, plural: str, selector: str) -> None:
        custom = k8s.CustomObjectsApi(self._client())
        found = self._call(
            f"list {plural}",
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.backend.namespace,
            plural,
            label_selector=selector,
        )
        for item in found.get("items", []):
            self._delete(plural, item["metadata"]["name"])

    def _wait_gone(self, plural: str, name: str) -> None:
        poll = _Poll(self.backend.teardown_timeout_s)
        while self._exists(plural, name):
            if poll.expired:
                raise BackendError(
                    f"{plural} {self.backend.namespace}/{name} was not deleted "
                    f"in {self.backend.teardown_timeout_s:g} s; is the OME "
                    "controller running?",
                    reason="timeout",
                )
            poll.sleep()

    # --- the API client ------------------------------------------------------------------

    def _labels(self, trial_id: str) -> dict[str, str]:
        return {STUDY_LABEL: _label_value(self.study_id), TRIAL_LABEL: _label_value(trial_id)}

    def _client(self) -> k8s.ApiClient:
        """The API client, built on first use from in-cluster config or a kubeconfig."""
        if self._api is not None:
            return self._api
        backend = self.backend
        try:
            if backend.kubeconfig is None and backend.kube_context is None and _inside_pod():
                configuration = k8s.Configuration()
                k8s_config.load_incluster_config(client_configuration=configuration)
                self._api = k8s.ApiClient(configuration)
            else:
                # KUBECONFIG is read here, not at import time as the client's default does.
                source = backend.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
                self._api = k8s_config.new_client_from_config(
                    config_file=source, context=backend.kube_context, persist_config=False
                )
        except (k8s_config.ConfigException, OSError) as e:
            raise BackendError(
                f"cannot load Kubernetes credentials ({e}); set backend.kubeconfig or "
                "backend.kube_context, or KUBECONFIG, or run the tuner in a pod",
                reason="startup",
            ) from e
        return self._api

    def _call(self, action: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API; a raw response (``_preload_content=False``) comes back as JSON."""
        try:
            result = method(*args, **kwargs)
        except ApiException as e:
            raise _api_error(e, action) from e
        except urllib3.exceptions.HTTPError as e:
            raise BackendError(
                f"cannot reach the Kubernetes API to {action} ({e}); check that the cluster is "
                "up and backend.kubeconfig / backend.kube_context point at it",
                reason="startup",
            ) from e
        if isinstance(result, urllib3.BaseHTTPResponse):
            return json.loads(result.data)
        return result


class _Poll:
    """The sleeps of one wait: from 0.1 s doubling to 2 s, never past the deadline."""

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s
        self._delay = _POLL_FIRST_S

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._deadline

    def sleep(self) -> None:
        """Wait before the next check."""
        time.sleep(max(0.0, min(self._delay, self._deadline - time.monotonic())))
        self._delay = min(self._delay * 2, _POLL_MAX_S)


class _Relay:
    """A local port whose connections go to a trial's server, once ``target`` says how.

    Outside the cluster the trial's endpoint must exist when ``deploy`` returns, before the
    server has a URL; this listener is that endpoint. Each accepted connection gets one
    upstream socket (direct TCP or a fresh pod port-forward) and one thread copying bytes.
    """

    def __init__(self, name: str) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.5)
        self.port: int = self._listener.getsockname()[1]
        self._connect: Callable[[], socket.socket] | None = None
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"relay-{name}", daemon=True).start()

    def target(self, connect: Callable[[], socket.socket]) -> None:
        """Send the next connections to the socket ``connect`` opens."""
        self._connect = connect

    def close(self) -> None:
        """Stop accepting; open connections end at their next read."""
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                local, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(local,), daemon=True).start()

    def _serve(self, local: socket.socket) -> None:
        connect = self._connect
        if connect is None:  # not Ready yet: refuse, as a server that is not up would
            local.close()
            return
        try:
            remote = connect()
        except (OSError, BackendError, ApiException) as e:
            logger.warning("relay on port %d cannot reach the server: %s", self.port, e)
            local.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(local, selectors.EVENT_READ, remote)
        selector.register(remote, selectors.EVENT_READ, local)
        try:
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            local.close()
            remote.close()


# --- helpers ------------------------------------------------------------------------------


@functools.cache
def _templates() -> jinja2.Environment:
    if not TEMPLATE_DIR.is_dir():
        raise BackendError(
            f"the manifest templates are missing from {TEMPLATE_DIR}; reinstall "
            "the tuner from its source tree",
            reason="startup",
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["q"] = _quote
    env.filters["toyaml"] = _to_yaml
    return env


def _render(template: str, variables: Mapping[str, Any]) -> str:
    return _templates().get_template(template).render(**variables)


def _quote(value: object) -> str:
    """A YAML scalar that reads back as this exact string (JSON quoting is valid YAML)."""
    return json.dumps(str(value))


def _to_yaml(value: Mapping[str, Any], indent: int) -> str:
    """A block of YAML whose lines after the first are indented by ``indent`` spaces."""
    text = yaml.safe_dump(dict(value), sort_keys=False, default_flow_style=False, width=1 << 16)
    return text.rstrip("\n").replace("\n", "\n" + " " * indent)


def _k8s_name(text: str) -> str:
    """``text`` as a Kubernetes name: lower case, dashes, a letter first, at most 63 chars."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"s-{name}"
    return name[:63].rstrip("-")


def _label_value(text: str) -> str:
    """``text`` as a label value; ids the tuner makes already are one."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def model_label_keys(model: str, namespace: str) -> tuple[str, str]:
    """The node labels OME's model agent sets to ``Ready`` where the model is downloaded.

    First for a ClusterBaseModel, then for a BaseModel in ``namespace`` (OME shortens long
    names with a hash, as its ``pkg/constants`` does).
    """
    cluster_room = _MAX_LABEL_NAME - len("clusterbasemodel.")
    cluster = f"models.ome.io/clusterbasemodel.{_shorten(model, cluster_room)}"
    room = _MAX_LABEL_NAME - len("basemodel.") - 1
    if len(namespace) + len(model) <= room:
        return cluster, f"models.ome.io/{namespace}.basemodel.{model}"
    namespace_room = len(namespace) if len(namespace) <= 8 else 8
    if room < 16:
        namespace_room = room // 2
    short_ns = _shorten(namespace, namespace_room)
    return cluster, f"models.ome.io/{short_ns}.basemodel.{_shorten(model, room - namespace_room)}"


def _shorten(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH_PREFIX]
    keep = room - _HASH_PREFIX - 1
    return digest[:room] if keep <= 0 else f"{digest}-{text[-keep:]}"


def _inside_pod() -> bool:
    token = Path(SERVICE_TOKEN_FILENAME)
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and token.exists()


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def _items(listing: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(listing.get("items") or [])


def _schedulable(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _quantity(value: object) -> int:
    """A whole-unit quantity such as a GPU count (``"4"``, ``4``, ``"4.0"``)."""
    if value is None:
        return 0
    try:
        return int(float(str(value)))
    except ValueError:
        return 0


def _pod_gpus(pod: Mapping[str, Any]) -> int:
    """GPUs a pod holds: its containers' requests (or limits), or its largest init container's."""
    spec = pod.get("spec") or {}

    def gpus(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        return _quantity(requests.get(GPU_KEY, limits.get(GPU_KEY)))

    main = sum(gpus(c) for c in spec.get("containers") or [])
    init = max((gpus(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def _is_ready(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _failure(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """A failure recorded in ``status.modelStatus`` that waiting will not fix."""
    model = status.get("modelStatus") or {}
    info = model.get("lastFailureInfo") or {}
    if info.get("reason") in _FATAL_FAILURES:
        text = f"{info['reason']}: {info.get('message', '').strip()}"
        if info.get("exitCode") is not None:
            text += f" (exit code {info['exitCode']})"
        return text, _reason_class(text)
    if model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
        text = f"model status {model['transitionStatus']}: {info.get('message') or 'no message'}"
        return text, _reason_class(text)
    return None


def _fatal_event(warnings: list[str]) -> tuple[str, str] | None:
    for text in warnings:
        if text.split(":", 1)[0] in _FATAL_EVENTS:
            return text, "startup"
    return None


def _reason_class(text: str) -> str:
    lowered = text.lower()
    if "oomkilled" in lowered or "out of memory" in lowered or "outofmemory" in lowered:
        return "oom"
    return "startup"


def _state_text(status: Mapping[str, Any]) -> str:
    conditions = [
        f"{c.get('type')}={c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else "")
        for c in status.get("conditions") or []
    ]
    info = (status.get("modelStatus") or {}).get("lastFailureInfo") or {}
    if info:
        conditions.append(f"lastFailureInfo {info.get('reason')}: {info.get('message', '')}")
    return "; ".join(conditions) or "no status yet"


def _events_text(warnings: list[str]) -> str:
    return "; events: " + " | ".join(warnings[-5:]) if warnings else ""


def _kubectl_hint(namespace: str, name: str) -> str:
    return (
        f"see `kubectl describe inferenceservice -n {namespace} {name}` and `kubectl logs "
        f"-n {namespace} -l {ISVC_LABEL}={name}`"
    )


def _api_error(error: ApiException, action: str) -> BackendError:
    """A BackendError for a refused API call, with the server's own message and a next step."""
    try:
        message = json.loads(error.body or "{}").get("message") or error.reason
    except ValueError:
        message = error.body or error.reason
    hint = {
        401: "check the credentials in the kubeconfig",
        403: "grant the tuner's ServiceAccount the RBAC in cluster/rbac.yaml",
        404: "check that the namespace exists and OME's CRDs are installed",
        422: "the manifest was rejected; see it with `autotuner render`",
    }.get(error.status or 0, "retry, or check the API server's health")
    return BackendError(
        f"the Kubernetes API refused to {action} (HTTP {error.status}: {message}); {hint}",
        reason="startup",
    )
