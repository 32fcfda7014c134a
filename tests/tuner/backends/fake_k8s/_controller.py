"""What OME, the scheduler and the kubelet would do with the fake cluster's objects."""

from __future__ import annotations

import copy
import re
import socket
import sys
import time
import uuid
from typing import TYPE_CHECKING

import httpx

from . import _benchmark
from ._kubelet import Server
from ._objects import GPU, make_pod, now, pod_gpus, quantity
from ._schemas import Json

if TYPE_CHECKING:
    from ._cluster import FakeCluster


class Controller:
    """The reconcile loop of one fake cluster: engine pods, their processes, BenchmarkJobs."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.servers: dict[tuple[str, str], Server] = {}
        self._launches: dict[tuple[str, str], tuple[Json, dict[str, str]]] = {}
        self._delete_at: dict[tuple[str, str], float] = {}

    def stop_servers(self) -> None:
        """Stop every engine process."""
        with self.cluster.lock:
            servers = list(self.servers.values())
            self.servers.clear()
        for server in servers:
            server.stop()

    def run(self) -> None:
        """Reconcile every 50 ms until the cluster stops."""
        while not self.cluster.stopped.is_set():
            for key in [k for k in list(self.cluster.objects) if k[0] == "inferenceservices"]:
                self._reconcile_isvc(*key[1:])
            for key in [k for k in list(self.cluster.objects) if k[0] == "benchmarkjobs"]:
                _benchmark.reconcile(self.cluster, *key[1:])
            self._reap_pods()
            with self.cluster.lock:
                cluster = self.cluster
                cluster.max_gpus_in_use = max(cluster.max_gpus_in_use, cluster.gpus_in_use())
            time.sleep(0.05)

    def _reconcile_isvc(self, namespace: str, name: str) -> None:
        isvc = self.cluster.get("inferenceservices", namespace, name)
        if isvc is None:
            return
        key = (namespace, name)
        if isvc["metadata"].get("deletionTimestamp"):
            self._delete_isvc(namespace, name)
            return
        pod = self._engine_pod(namespace, name)
        if pod is None:
            pod = self._create_engine_pod(isvc)
            if pod is None:
                return
        if not pod["spec"].get("nodeName"):
            if not self._schedule(pod):
                return
            self._start(isvc, pod)
        server = self.servers.get(key)
        if server is None:
            return
        code = server.process.poll()
        if code is not None:
            self._failed(isvc, pod, server, code)
            return
        if (failure := server.startup_probe_failed()) is not None:
            self._probe_killed(isvc, pod, server, failure)
            return
        if not server.healthy and server.port is not None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{server.port}/health",
                                    timeout=0.5).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy:
                server.healthy = True
                self._set_isvc_status(isvc, ready=True, url=f"http://127.0.0.1:{server.port}")
                with self.cluster.lock:
                    status = pod["status"]["containerStatuses"][0]
                    status.update(ready=True, started=True)

    def _create_engine_pod(self, isvc: Json) -> Json | None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        spec = isvc["spec"]
        model = self._model(namespace, spec["model"]["name"])
        runtime = self.cluster.get("clusterservingruntimes", "", (spec.get("runtime") or {}).get(
            "name", ""))
        if model is None:
            self._fail_model(isvc, "BaseModelNotFound",
                             f"model {spec['model']['name']} not found")
            return None
        if runtime is None:
            self.cluster.event(namespace, "InferenceService", name, "RuntimeValidationError",
                       f"runtime {(spec.get('runtime') or {}).get('name')} not found")
            return None
        runner = merged_runner(runtime, isvc)
        accelerator_override(runtime, isvc, runner)
        labels = {"app": f"{name}-engine", "component": "engine",
                  "ome.io/inferenceservice": name, "serving-runtime": runtime["metadata"]["name"],
                  "base-model-name": model["metadata"]["name"]}
        suffix = uuid.uuid4().hex[:5]
        pod = make_pod(namespace, f"{name}-engine-{suffix}", labels,
                        quantity(((runner.get("resources") or {}).get("requests") or {}).get(
                            GPU)), image=str(runner.get("image") or ""))
        pod["spec"]["containers"][0].update(
            {key: runner[key] for key in ("command", "args", "env", "startupProbe",
                                       "terminationMessagePolicy") if key in runner})
        pod["spec"]["nodeSelector"] = {
            f"models.ome.io/clusterbasemodel.{model['metadata']['name']}": "Ready"}
        model_path = ((model.get("spec") or {}).get("storage") or {}).get("path", "")
        with self.cluster.lock:
            key = (namespace, pod["metadata"]["name"])
            self.cluster.pods[key] = pod
            # What the kubelet would run: the merged runner, MODEL_PATH as OME injects it.
            self._launches[key] = (runner, {"MODEL_PATH": model_path})
        self._set_isvc_status(isvc, ready=False)
        return pod

    def _schedule(self, pod: Json) -> bool:
        """Put the pod on a node, as kube-scheduler would, or leave it Pending with an event."""
        need = pod_gpus(pod)
        selector = pod["spec"].get("nodeSelector") or {}
        with self.cluster.lock:
            used: dict[str, int] = {}
            for other in self.cluster.pods.values():
                node = other["spec"].get("nodeName")
                if node and other["status"]["phase"] in ("Pending", "Running"):
                    used[node] = used.get(node, 0) + pod_gpus(other)
            reasons = []
            for node in self.cluster.nodes.values():
                labels = node["metadata"]["labels"]
                if not all(labels.get(k) == v for k, v in selector.items()):
                    reasons.append("didn't match Pod's node affinity/selector")
                elif node["spec"].get("unschedulable") or node["status"]["conditions"][0][
                        "status"] != "True":
                    reasons.append("was unschedulable")
                elif quantity(node["status"]["allocatable"][GPU]) - used.get(
                        node["metadata"]["name"], 0) < need:
                    reasons.append(f"Insufficient {GPU}")
                else:
                    pod["spec"]["nodeName"] = node["metadata"]["name"]
                    pod["status"]["phase"] = "Running"
                    return True
        summary = ", ".join(f"1 node(s) {r}" for r in sorted(set(reasons))) or "no nodes"
        self.cluster.event(pod["metadata"]["namespace"], "Pod", pod["metadata"]["name"],
                           "FailedScheduling",
                           f"0/{len(self.cluster.nodes)} nodes are available: {summary}.")
        return False

    def _start(self, isvc: Json, pod: Json) -> None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        runner, env = self._launches[(namespace, pod["metadata"]["name"])]
        env = dict(env)
        env.update({e["name"]: e.get("value", "") for e in runner.get("env") or []
                    if "value" in e})
        argv = [expand(word, env) for word in
                list(runner.get("command") or []) + list(runner.get("args") or [])]
        port: int | None = None
        if argv[:3] in (["python3", "-m", "sglang.launch_server"],
                        ["python", "-m", "sglang.launch_server"]):
            port = free_port()
            argv = [sys.executable, "-m", "twin.launch_server",
                    *_set_flag(_set_flag(argv[3:], "--host", "127.0.0.1"), "--port", str(port)),
                    *self.cluster.twin_args]
        elif argv[:1] in (["python3"], ["python"]):
            argv = [sys.executable, *argv[1:]]
        log = self.cluster.workdir / f"{namespace}.{name}.log"
        server = Server(argv, port, log, runner)
        with self.cluster.lock:
            self.servers[(namespace, name)] = server
            pod["status"]["containerStatuses"] = [{
                "name": "ome-container", "image": pod["spec"]["containers"][0]["image"],
                "imageID": "", "ready": False, "started": True, "restartCount": 0,
                "state": {"running": {"startedAt": now()}},
            }]

    def _failed(self, isvc: Json, pod: Json, server: Server, code: int) -> None:
        status = pod["status"]["containerStatuses"][0]
        if status.get("restartCount"):
            return  # already recorded
        self._restarted(isvc, pod, server.terminated(code))

    def _probe_killed(self, isvc: Json, pod: Json, server: Server, failure: str) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.cluster.event(namespace, "Pod", name, "Unhealthy", failure)
        self.cluster.event(namespace, "Pod", name, "Killing",
                           "Container ome-container failed startup probe, will be restarted",
                           type_="Normal")
        self._restarted(isvc, pod, server.terminated(server.kill()))

    def _restarted(self, isvc: Json, pod: Json, terminated: Json) -> None:
        """The kubelet restarts the container (then backs off); OME's status reconciler copies
        the termination into ``lastFailureInfo`` (``status_util.go``
        ``checkContainerStatuses``)."""
        namespace = isvc["metadata"]["namespace"]
        status = pod["status"]["containerStatuses"][0]
        with self.cluster.lock:
            status.update(ready=False, started=False, restartCount=1, state={"waiting": {
                "reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed "
                f"container=ome-container pod={pod['metadata']['name']}"}},
                lastState={"terminated": terminated})
        self.cluster.event(namespace, "Pod", pod["metadata"]["name"], "BackOff",
                           "Back-off restarting failed container ome-container in pod "
                           f"{pod['metadata']['name']}")
        self._set_isvc_status(isvc, ready=False, failure={
            "reason": "ModelLoadFailed", "message": terminated["message"],
            "exitCode": terminated["exitCode"], "time": now()})

    def _fail_model(self, isvc: Json, reason: str, message: str) -> None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        self.cluster.event(namespace, "InferenceService", name, reason, message)
        self._set_isvc_status(isvc, ready=False,
                              failure={"reason": reason, "message": message, "time": now()})

    def _set_isvc_status(self, isvc: Json, *, ready: bool, url: str | None = None,
                         failure: Json | None = None) -> None:
        flag = "True" if ready else "False"
        conditions = [
            {"type": "EngineReady", "status": flag, "lastTransitionTime": now()},
            {"type": "IngressReady", "status": "True", "reason": "IngressDisabled",
             "lastTransitionTime": now()},
            {"type": "Ready", "status": flag, "lastTransitionTime": now()},
        ]
        if not ready:
            for condition in conditions[::2]:
                condition.update(reason="EngineNotReady",
                                 message="the engine deployment is not available")
        status: Json = {
            "conditions": conditions, "observedGeneration": 1,
            "modelStatus": {
                "transitionStatus": "UpToDate" if ready else "InProgress",
                "modelRevisionStates": {"activeModelState": "Loaded" if ready else "Loading",
                                        "targetModelState": "Loaded"},
            },
        }
        if failure:
            status["modelStatus"].update(transitionStatus="BlockedByFailedLoad",
                                         lastFailureInfo=failure)
            status["modelStatus"]["modelRevisionStates"]["activeModelState"] = "FailedToLoad"
        if url:
            status["url"] = url
            status["address"] = {"url": url}
        self.cluster.set_status("inferenceservices", isvc["metadata"]["namespace"],
                        isvc["metadata"]["name"], status)

    def _delete_isvc(self, namespace: str, name: str) -> None:
        with self.cluster.lock:
            server = self.servers.pop((namespace, name), None)
        if server is not None:
            server.stop()
        pod = self._engine_pod(namespace, name)
        with self.cluster.lock:
            if pod is not None:
                pod["metadata"].setdefault("deletionTimestamp", now())
                self._delete_at.setdefault((namespace, pod["metadata"]["name"]),
                                           time.monotonic() + self.cluster.pod_grace_s)
            self.cluster.objects.pop(("inferenceservices", namespace, name), None)

    def _reap_pods(self) -> None:
        with self.cluster.lock:
            for key in list(self.cluster.pods):
                if self._delete_at.get(key, float("inf")) <= time.monotonic():
                    del self.cluster.pods[key]
                    self._delete_at.pop(key)
                    self._launches.pop(key, None)

    def _engine_pod(self, namespace: str, name: str) -> Json | None:
        with self.cluster.lock:
            for (ns, _), pod in self.cluster.pods.items():
                if ns == namespace and pod["metadata"]["labels"].get(
                        "ome.io/inferenceservice") == name:
                    return pod
        return None

    def _model(self, namespace: str, name: str) -> Json | None:
        cluster = self.cluster
        return cluster.get("basemodels", namespace, name) or cluster.get("clusterbasemodels", "",
                                                                         name)


def merged_runner(runtime: Json, isvc: Json) -> Json:
    """The runner OME derives: the runtime's, with the isvc's strategically merged over it.

    Maps (``resources``, probes) merge key by key, ``env`` merges by ``name``, other lists
    (``command``, ``args``) are replaced wholesale.
    """
    base = copy.deepcopy(((runtime.get("spec") or {}).get("engineConfig") or {}).get(
        "runner") or {})
    override = ((isvc["spec"].get("engine") or {}).get("runner") or {})
    return _merge(base, override)


def _merge(base: Json, override: Json) -> Json:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            merged[key] = _merge(old, value)
        elif key == "env" and isinstance(old, list):
            names = [e["name"] for e in value]
            merged[key] = [e for e in old if e["name"] not in names] + copy.deepcopy(value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def accelerator_override(runtime: Json, isvc: Json, runner: Json) -> None:
    """OME's ``MergeRuntimeArgumentsOverride`` (``components/base.go``), tensor parallelism part.

    A class applies only when the runtime lists ``acceleratorRequirements.acceleratorClasses``
    and the isvc names one (``engine.acceleratorOverride`` or ``acceleratorSelector``; the
    fake models no selection policy); then its ``tensorParallelismOverride`` rewrites the
    first ``--tp-size``/``--tp``/``--tensor-parallel-size`` in ``args``, else in ``command``.
    """
    spec = runtime.get("spec") or {}
    classes = (spec.get("acceleratorRequirements") or {}).get("acceleratorClasses") or []
    chosen = (((isvc["spec"].get("engine") or {}).get("acceleratorOverride") or {}).get(
        "acceleratorClass") or (isvc["spec"].get("acceleratorSelector") or {}).get(
        "acceleratorClass"))
    if not classes or not chosen:
        return
    for model_format in spec.get("supportedModelFormats") or []:
        config = (model_format.get("acceleratorConfig") or {}).get(chosen) or {}
        parallel = config.get("tensorParallelismOverride") or {}
        for key, aliases in (("tensorParallelSize", ("--tp-size", "--tp",
                                                     "--tensor-parallel-size")),
                             ("pipelineParallelSize", ("--pp-size", "--pp",
                                                       "--pipeline-parallel-size"))):
            if parallel.get(key):
                _override_param(runner, aliases, int(parallel[key]))
        if config:
            return


def _override_param(runner: Json, aliases: tuple[str, ...], value: int) -> None:
    for field in ("args", "command"):
        words = runner.get(field) or []
        for alias in aliases:
            for i, word in enumerate(words):
                if word == alias and i + 1 < len(words):
                    words[i + 1] = str(value)
                    return
                if word.startswith(f"{alias}="):
                    words[i] = f"{alias}={value}"
                    return


def expand(word: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion (``$$`` escapes a literal ``$``)."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, word)


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word == flag:
            out[i + 1] = value
            return out
    return out + [flag, value]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
