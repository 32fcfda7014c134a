"""An in-test Kubernetes API server with OME's CRDs, for the ``ome`` backend's tests.

Real HTTP on 127.0.0.1 (FastAPI in a uvicorn thread), used through the real ``kubernetes``
client. Like a real API server it validates custom objects against the ``openAPIV3Schema`` of
the real CRDs (HTTP 422 on failure) and *prunes* fields the schema does not know; unlike one,
it records what it pruned in :attr:`FakeCluster.pruned`, so tests can treat pruning as a bug.

It "reconciles" the way OME would, in one background thread:

* an InferenceService gets one engine pod (labels ``ome.io/inferenceservice``,
  ``component=engine``; GPU requests from the merged runner) scheduled on a Ready node that
  holds the model and has the GPUs free, else it stays Pending with a ``FailedScheduling``
  event. A scheduled pod runs the merged runner command with ``$(MODEL_PATH)`` expanded;
  ``python3 -m sglang.launch_server`` becomes ``python -m twin.launch_server`` on a free port
  of 127.0.0.1, and ``status.url`` points there. When ``/health`` answers, ``Ready`` is set;
  when the process dies, ``status.modelStatus.lastFailureInfo`` and a Warning event are.
* Deleting an isvc kills its process; its pod lingers ``pod_grace_s`` (Terminating), then goes.
* A BenchmarkJob waits for its isvc to be Ready, then writes a genai-bench-shaped result into
  the directory registered for its PVC and completes.
* ``pods/portforward`` speaks the ``v4.channel.k8s.io`` websocket protocol to the pod's process.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import uvicorn
import yaml
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

REPO = Path(__file__).resolve().parents[3]
# OME's CRDs and samples live beside the checkout (../shared/ome); OME_SHARED_DIR overrides.
OME_DIR = Path(os.environ.get("OME_SHARED_DIR") or REPO.parent / "shared" / "ome")
GPU = "nvidia.com/gpu"

Json = dict[str, Any]

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_META_FIELDS = {"name", "generateName", "namespace", "labels", "annotations", "finalizers",
                "ownerReferences", "uid", "resourceVersion", "generation",
                "creationTimestamp", "deletionTimestamp", "managedFields"}
# The OME webhook's text-to-text scenario forms.
_SCENARIO = re.compile(r"^(D\(\d+,\d+\)|N\([\d.]+,[\d.]+\)/\([\d.]+,[\d.]+\)"
                       r"|U\(\d+,\d+\)(/\(\d+,\d+\))?)$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- schemas: validation and pruning --------------------------------------------------------


class CrdSchemas:
    """The ``openAPIV3Schema`` of each OME kind, by plural, read from the CRD files."""

    def __init__(self, crd_dir: Path) -> None:
        self.kinds: dict[str, tuple[str, bool, Json]] = {}
        for path in sorted(crd_dir.glob("*.yaml")):
            crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
            names = crd["spec"]["names"]
            version = crd["spec"]["versions"][0]
            namespaced = crd["spec"]["scope"] == "Namespaced"
            self.kinds[names["plural"]] = (names["kind"], namespaced,
                                           version["schema"]["openAPIV3Schema"])

    def schema(self, plural: str) -> Json:
        return self.kinds[plural][2]

    def admit(self, plural: str, body: Json) -> tuple[Json, list[str], list[str]]:
        """What a real API server stores for ``body``: (pruned copy, pruned paths, errors)."""
        kind, namespaced, schema = self.kinds[plural]
        errors: list[str] = []
        if body.get("apiVersion") != "ome.io/v1beta1" or body.get("kind") != kind:
            errors.append(f"apiVersion/kind: expected ome.io/v1beta1 {kind}, got "
                          f"{body.get('apiVersion')} {body.get('kind')}")
        pruned: list[str] = []
        stored: Json = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind")}
        stored["metadata"] = _prune_metadata(body.get("metadata") or {}, pruned)
        errors += _metadata_errors(stored["metadata"])
        for key, value in body.items():
            if key in ("apiVersion", "kind", "metadata"):
                continue
            if key == "status":  # the status subresource: ignored on create
                continue
            sub = schema.get("properties", {}).get(key)
            if sub is None:
                pruned.append(key)
                continue
            stored[key] = prune(value, sub, key, pruned)
        validator = jsonschema.Draft7Validator(
            {**schema, "properties": {k: v for k, v in schema["properties"].items()
                                      if k not in ("metadata", "status")}})
        for error in validator.iter_errors(stored):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            errors.append(f"{where}: {error.message[:300]}")
        return stored, pruned, errors

    def check_status(self, plural: str, status: Json) -> None:
        """Fail the test when the fake itself writes a status the CRD would not keep."""
        sub = self.schema(plural)["properties"]["status"]
        pruned: list[str] = []
        prune(status, sub, "status", pruned)
        errors = [e.message for e in jsonschema.Draft7Validator(sub).iter_errors(status)]
        assert not pruned and not errors, (plural, pruned, errors)


def prune(value: Any, schema: Json, path: str, pruned: list[str]) -> Any:
    """Structural-schema pruning: drop what the schema does not declare, record its path.

    Handles ``properties``, ``additionalProperties`` (maps), ``items``,
    ``x-kubernetes-preserve-unknown-fields`` (unknown fields kept) and int-or-string
    (``anyOf`` leaves, kept as they are). Nulls are dropped, as for non-nullable fields.
    """
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields", False)
        out: Json = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if item is None and not schema.get("nullable"):
                pruned.append(f"{where} (null)")
                continue
            if properties is not None and key in properties:
                out[key] = prune(item, properties[key], where, pruned)
            elif isinstance(extra, dict):
                out[key] = prune(item, extra, where, pruned)
            elif keep_unknown or extra is True:
                out[key] = item
            else:
                pruned.append(where)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"], f"{path}[{i}]", pruned)
                for i, item in enumerate(value)]
    return value


def _prune_metadata(meta: Json, pruned: list[str]) -> Json:
    out: Json = {}
    for key, value in meta.items():
        if key in _META_FIELDS:
            out[key] = copy.deepcopy(value)
        else:
            pruned.append(f"metadata.{key}")
    return out


def _metadata_errors(meta: Json) -> list[str]:
    errors = []
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.match(name):
        errors.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain "
                      "is required")
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict):
            errors.append(f"metadata.{field}: must be a map of strings")
            continue
        for key, value in values.items():
            prefix, _, label = key.rpartition("/")
            if len(label) > 63 or not _LABEL_NAME.match(label) or (
                    prefix and not _SUBDOMAIN.match(prefix)):
                errors.append(f"metadata.{field}: Invalid key: {key!r}")
            if not isinstance(value, str):
                errors.append(f"metadata.{field}.{key}: Invalid value: {value!r}: must be a "
                              "string")
            elif field == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                errors.append(f"metadata.labels.{key}: Invalid value: {value!r}")
    return errors


# --- selectors ------------------------------------------------------------------------------


def _get_path(obj: Json, dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _matches(obj: Json, label_selector: str | None, field_selector: str | None) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    for term in filter(None, (field_selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _get_path(obj, key.strip()) == value.strip():
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if _get_path(obj, key.strip()) != value.strip():
                return False
    return True


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Failure", "message": message, "reason": reason,
                         "code": code}, status_code=code)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the cluster ----------------------------------------------------------------------------


class _Server:
    """The process standing in for an engine pod's container."""

    def __init__(self, argv: list[str], port: int | None, log: Path) -> None:
        self.argv = argv
        self.port = port
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, cwd=REPO,
                                            env={**os.environ, "PYTHONPATH": str(REPO)})
        self.healthy = False

    def tail(self, lines: int = 5) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class FakeCluster:
    """A fake cluster with OME installed; see the module docstring.

    Attributes:
        pruned: ``"<plural>/<name>: <path>"`` for every field pruned from a created object.
        rejected: the message of every 422 answer.
        created: every custom object as the client sent it.
        max_gpus_in_use: the most GPUs scheduled pods held at once.
    """

    def __init__(self, *, schemas: CrdSchemas, workdir: Path, twin_args: tuple[str, ...] = (),
                 pod_grace_s: float = 0.3) -> None:
        self.schemas = schemas
        self.workdir = workdir
        self.twin_args = twin_args
        self.pod_grace_s = pod_grace_s
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], Json] = {}
        self.namespaces: set[str] = {"default"}
        self.nodes: dict[str, Json] = {}
        self.pods: dict[tuple[str, str], Json] = {}
        self.events: list[Json] = []
        self.pvcs: dict[tuple[str, str], Path] = {}
        self.pruned: list[str] = []
        self.rejected: list[str] = []
        self.created: list[Json] = []
        self.max_gpus_in_use = 0
        self._servers: dict[tuple[str, str], _Server] = {}
        self._launches: dict[tuple[str, str], tuple[Json, dict[str, str]]] = {}
        self._delete_at: dict[tuple[str, str], float] = {}
        self._counter = itertools.count(1)
        self._stop = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._uvicorn = uvicorn.Server(uvicorn.Config(_app(self), log_level="warning",
                                                      lifespan="off", ws="websockets-sansio"))
        self._threads: list[threading.Thread] = []

    # --- setup ------------------------------------------------------------------------------

    def start(self) -> FakeCluster:
        self._threads = [
            threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self._socket]},
                             daemon=True),
            threading.Thread(target=self._reconcile_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            assert time.monotonic() < deadline, "the fake API server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._uvicorn.should_exit = True
        for thread in self._threads:
            thread.join(10)
        with self.lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.stop()
        self._socket.close()

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig whose current context is this server."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))
        return path

    def add_namespace(self, name: str) -> None:
        with self.lock:
            self.namespaces.add(name)

    def add_node(self, name: str, *, gpus: int, models: tuple[str, ...] = (),
                 ready: bool = True, unschedulable: bool = False) -> None:
        """A node with ``gpus`` allocatable GPUs, holding the given ClusterBaseModels."""
        labels = {"kubernetes.io/hostname": name}
        labels.update({f"models.ome.io/clusterbasemodel.{m}": "Ready" for m in models})
        node: Json = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "uid": str(uuid.uuid4())},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"allocatable": {GPU: str(gpus), "cpu": "64", "memory": "512Gi"},
                       "capacity": {GPU: str(gpus), "cpu": "64", "memory": "512Gi"},
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]},
        }
        with self.lock:
            self.nodes[name] = node

    def add_pod(self, namespace: str, name: str, *, node: str | None, gpus: int,
                phase: str = "Running", labels: dict[str, str] | None = None) -> Json:
        """A pod that is not OME's (another tenant's), holding ``gpus`` on ``node``."""
        pod = self._pod(namespace, name, labels or {}, gpus, image="busybox")
        pod["spec"]["nodeName"] = node
        pod["status"]["phase"] = phase
        with self.lock:
            self.pods[(namespace, name)] = pod
        return pod

    def add_pvc(self, namespace: str, name: str, path: Path) -> None:
        """A PVC whose contents are the local directory ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.pvcs[(namespace, name)] = path

    def apply(self, body: Json) -> Json:
        """Create a custom object as an admin would (kubectl apply); raise if rejected."""
        plural = {kind: p for p, (kind, _, _) in self.schemas.kinds.items()}[body["kind"]]
        namespace = body["metadata"].get("namespace", "") if self.schemas.kinds[plural][1] \
            else ""
        code, result = self.create(plural, namespace, body)
        assert code == 201, result
        return result

    # --- state ------------------------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> Json | None:
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, plural: str, namespace: str | None = None) -> list[Json]:
        with self.lock:
            return [copy.deepcopy(o) for (p, ns, _), o in sorted(self.objects.items())
                    if p == plural and namespace in (None, ns)]

    def gpus_in_use(self) -> int:
        with self.lock:
            return sum(_pod_gpus(p) for p in self.pods.values()
                       if p["spec"].get("nodeName") and p["status"]["phase"] in
                       ("Pending", "Running"))

    def processes(self) -> list[subprocess.Popen[bytes]]:
        with self.lock:
            return [s.process for s in self._servers.values()]

    def set_status(self, plural: str, namespace: str, name: str, status: Json) -> None:
        """Replace an object's status (as its controller would), checked against the CRD."""
        self.schemas.check_status(plural, status)
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            if obj is not None:
                obj["status"] = status

    def event(self, namespace: str, kind: str, name: str, reason: str, message: str,
              type_: str = "Warning") -> None:
        with self.lock:
            for event in self.events:
                same = (event["involvedObject"]["name"] == name
                        and event["reason"] == reason and event["message"] == message)
                if same:
                    event["count"] += 1
                    event["lastTimestamp"] = _now()
                    return
            self.events.append({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name}.{next(self._counter):x}", "namespace": namespace,
                             "uid": str(uuid.uuid4())},
                "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
                "reason": reason, "message": message, "type": type_, "count": 1,
                "firstTimestamp": _now(), "lastTimestamp": _now(),
                "source": {"component": "fake-ome"},
            })

    # --- API verbs --------------------------------------------------------------------------

    def create(self, plural: str, namespace: str, body: Json) -> tuple[int, Json]:
        self.created.append(copy.deepcopy(body))
        if namespace and namespace not in self.namespaces:
            return 404, {"reason": "NotFound", "message": f'namespaces "{namespace}" not found'}
        stored, pruned, errors = self.schemas.admit(plural, body)
        errors += self._webhook(plural, stored)
        name = str(stored["metadata"].get("name"))
        if errors:
            message = (f'{self.schemas.kinds[plural][0]}.ome.io "{name}" is invalid: '
                       + "; ".join(errors))
            self.rejected.append(message)
            return 422, {"reason": "Invalid", "message": message}
        self.pruned += [f"{plural}/{name}: {path}" for path in pruned]
        with self.lock:
            if (plural, namespace, name) in self.objects:
                return 409, {"reason": "AlreadyExists",
                             "message": f'{plural}.ome.io "{name}" already exists'}
            meta = stored["metadata"]
            meta.update(namespace=namespace or None, uid=str(uuid.uuid4()), generation=1,
                        resourceVersion=str(next(self._counter)), creationTimestamp=_now())
            if not namespace:
                del meta["namespace"]
            if plural in ("inferenceservices", "benchmarkjobs"):
                meta["finalizers"] = [f"{plural[:-1]}.finalizers"]
            self.objects[(plural, namespace, name)] = stored
            return 201, copy.deepcopy(stored)

    def delete(self, plural: str, namespace: str, name: str) -> tuple[int, Json]:
        with self.lock:
            obj = self.objects.get((plural, namespace, name))
            if obj is None:
                return 404, {"reason": "NotFound",
                             "message": f'{plural}.ome.io "{name}" not found'}
            if obj["metadata"].get("finalizers"):
                obj["metadata"].setdefault("deletionTimestamp", _now())
            else:
                del self.objects[(plural, namespace, name)]
            return 200, copy.deepcopy(obj)

    def _webhook(self, plural: str, obj: Json) -> list[str]:
        """What OME's admission webhooks check beyond the schema."""
        name = str(obj["metadata"].get("name"))
        spec = obj.get("spec") or {}
        errors = []
        if plural == "inferenceservices" and (len(name) > 63 or not _DNS_LABEL.match(name)):
            errors.append(f"metadata.name: {name!r} must match [a-z]([-a-z0-9]*[a-z0-9])?")
        if plural == "benchmarkjobs":
            endpoint = spec.get("endpoint") or {}
            if ("inferenceService" in endpoint) == ("endpoint" in endpoint):
                errors.append("spec.endpoint: give exactly one of inferenceService, endpoint")
            scenarios = spec.get("trafficScenarios") or []
            errors += [f"spec.trafficScenarios: {s!r} is not valid for text-to-text"
                       for s in scenarios if not _SCENARIO.match(s)]
            for field in ("trafficScenarios", "numConcurrency"):
                values = spec.get(field) or []
                if len(values) != len(set(values)):
                    errors.append(f"spec.{field}: duplicates")
        return errors

    # --- reconciling ------------------------------------------------------------------------

    def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            for key in [k for k in list(self.objects) if k[0] == "inferenceservices"]:
                self._reconcile_isvc(*key[1:])
            for key in [k for k in list(self.objects) if k[0] == "benchmarkjobs"]:
                self._reconcile_benchmark(*key[1:])
            self._reap_pods()
            with self.lock:
                self.max_gpus_in_use = max(self.max_gpus_in_use, self.gpus_in_use())
            time.sleep(0.05)

    def _reconcile_isvc(self, namespace: str, name: str) -> None:
        isvc = self.get("inferenceservices", namespace, name)
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
        server = self._servers.get(key)
        if server is None:
            return
        code = server.process.poll()
        if code is not None:
            self._failed(isvc, pod, server, code)
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
                with self.lock:
                    status = pod["status"]["containerStatuses"][0]
                    status.update(ready=True, started=True)

    def _create_engine_pod(self, isvc: Json) -> Json | None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        spec = isvc["spec"]
        model = self._model(namespace, spec["model"]["name"])
        runtime = self.get("clusterservingruntimes", "", (spec.get("runtime") or {}).get(
            "name", ""))
        if model is None:
            self._fail_model(isvc, "BaseModelNotFound",
                             f"model {spec['model']['name']} not found")
            return None
        if runtime is None:
            self.event(namespace, "InferenceService", name, "RuntimeValidationError",
                       f"runtime {(spec.get('runtime') or {}).get('name')} not found")
            return None
        runner = _merged_runner(runtime, isvc)
        labels = {"app": f"{name}-engine", "component": "engine",
                  "ome.io/inferenceservice": name, "serving-runtime": runtime["metadata"]["name"],
                  "base-model-name": model["metadata"]["name"]}
        suffix = uuid.uuid4().hex[:5]
        pod = self._pod(namespace, f"{name}-engine-{suffix}", labels,
                        _quantity(((runner.get("resources") or {}).get("requests") or {}).get(
                            GPU)), image=str(runner.get("image") or ""))
        pod["spec"]["nodeSelector"] = {
            f"models.ome.io/clusterbasemodel.{model['metadata']['name']}": "Ready"}
        model_path = ((model.get("spec") or {}).get("storage") or {}).get("path", "")
        with self.lock:
            key = (namespace, pod["metadata"]["name"])
            self.pods[key] = pod
            # What the kubelet would run: the merged runner, MODEL_PATH as OME injects it.
            self._launches[key] = (runner, {"MODEL_PATH": model_path})
        self._set_isvc_status(isvc, ready=False)
        return pod

    def _schedule(self, pod: Json) -> bool:
        """Put the pod on a node, as kube-scheduler would, or leave it Pending with an event."""
        need = _pod_gpus(pod)
        selector = pod["spec"].get("nodeSelector") or {}
        with self.lock:
            used: dict[str, int] = {}
            for other in self.pods.values():
                node = other["spec"].get("nodeName")
                if node and other["status"]["phase"] in ("Pending", "Running"):
                    used[node] = used.get(node, 0) + _pod_gpus(other)
            reasons = []
            for node in self.nodes.values():
                labels = node["metadata"]["labels"]
                if not all(labels.get(k) == v for k, v in selector.items()):
                    reasons.append("didn't match Pod's node affinity/selector")
                elif node["spec"].get("unschedulable") or node["status"]["conditions"][0][
                        "status"] != "True":
                    reasons.append("was unschedulable")
                elif _quantity(node["status"]["allocatable"][GPU]) - used.get(
                        node["metadata"]["name"], 0) < need:
                    reasons.append(f"Insufficient {GPU}")
                else:
                    pod["spec"]["nodeName"] = node["metadata"]["name"]
                    pod["status"]["phase"] = "Running"
                    return True
        summary = ", ".join(f"1 node(s) {r}" for r in sorted(set(reasons))) or "no nodes"
        self.event(pod["metadata"]["namespace"], "Pod", pod["metadata"]["name"],
                   "FailedScheduling", f"0/{len(self.nodes)} nodes are available: {summary}.")
        return False

    def _start(self, isvc: Json, pod: Json) -> None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        runner, env = self._launches[(namespace, pod["metadata"]["name"])]
        env = dict(env)
        env.update({e["name"]: e.get("value", "") for e in runner.get("env") or []
                    if "value" in e})
        argv = [_expand(word, env) for word in
                list(runner.get("command") or []) + list(runner.get("args") or [])]
        port: int | None = None
        if argv[:3] in (["python3", "-m", "sglang.launch_server"],
                        ["python", "-m", "sglang.launch_server"]):
            port = free_port()
            argv = [sys.executable, "-m", "twin.launch_server",
                    *_set_flag(_set_flag(argv[3:], "--host", "127.0.0.1"), "--port", str(port)),
                    *self.twin_args]
        elif argv[:1] in (["python3"], ["python"]):
            argv = [sys.executable, *argv[1:]]
        log = self.workdir / f"{namespace}.{name}.log"
        server = _Server(argv, port, log)
        with self.lock:
            self._servers[(namespace, name)] = server
            pod["status"]["containerStatuses"] = [{
                "name": "ome-container", "image": pod["spec"]["containers"][0]["image"],
                "imageID": "", "ready": False, "started": True, "restartCount": 0,
                "state": {"running": {"startedAt": _now()}},
            }]

    def _failed(self, isvc: Json, pod: Json, server: _Server, code: int) -> None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        status = pod["status"]["containerStatuses"][0]
        if status.get("restartCount"):
            return  # already recorded
        tail = server.tail()
        oom = "out of memory" in tail.lower()
        with self.lock:
            status.update(ready=False, restartCount=1, state={"waiting": {
                "reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}},
                lastState={"terminated": {"exitCode": code,
                                          "reason": "OOMKilled" if oom else "Error",
                                          "message": tail}})
        reason = "RuntimeUnhealthy" if server.healthy else "ModelLoadFailed"
        self.event(namespace, "InferenceService", name, reason,
                   f"engine container exited with code {code}: {tail}")
        self._set_isvc_status(isvc, ready=False, failure={
            "reason": reason, "message": f"engine container exited: {tail}", "exitCode": code,
            "time": _now()})

    def _fail_model(self, isvc: Json, reason: str, message: str) -> None:
        namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
        self.event(namespace, "InferenceService", name, reason, message)
        self._set_isvc_status(isvc, ready=False,
                              failure={"reason": reason, "message": message, "time": _now()})

    def _set_isvc_status(self, isvc: Json, *, ready: bool, url: str | None = None,
                         failure: Json | None = None) -> None:
        flag = "True" if ready else "False"
        conditions = [
            {"type": "EngineReady", "status": flag, "lastTransitionTime": _now()},
            {"type": "IngressReady", "status": "True", "reason": "IngressDisabled",
             "lastTransitionTime": _now()},
            {"type": "Ready", "status": flag, "lastTransitionTime": _now()},
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
        self.set_status("inferenceservices", isvc["metadata"]["namespace"],
                        isvc["metadata"]["name"], status)

    def _delete_isvc(self, namespace: str, name: str) -> None:
        with self.lock:
            server = self._servers.pop((namespace, name), None)
        if server is not None:
            server.stop()
        pod = self._engine_pod(namespace, name)
        with self.lock:
            if pod is not None:
                pod["metadata"].setdefault("deletionTimestamp", _now())
                self._delete_at.setdefault((namespace, pod["metadata"]["name"]),
                                           time.monotonic() + self.pod_grace_s)
            self.objects.pop(("inferenceservices", namespace, name), None)

    def _reap_pods(self) -> None:
        with self.lock:
            for key in list(self.pods):
                if self._delete_at.get(key, float("inf")) <= time.monotonic():
                    del self.pods[key]
                    self._delete_at.pop(key)
                    self._launches.pop(key, None)

    def _engine_pod(self, namespace: str, name: str) -> Json | None:
        with self.lock:
            for (ns, _), pod in self.pods.items():
                if ns == namespace and pod["metadata"]["labels"].get(
                        "ome.io/inferenceservice") == name:
                    return pod
        return None

    def _model(self, namespace: str, name: str) -> Json | None:
        return self.get("basemodels", namespace, name) or self.get("clusterbasemodels", "",
                                                                   name)

    def _pod(self, namespace: str, name: str, labels: dict[str, str], gpus: int, *,
             image: str) -> Json:
        resources = {"requests": {GPU: str(gpus)}, "limits": {GPU: str(gpus)}} if gpus else {}
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "uid": str(uuid.uuid4()), "creationTimestamp": _now()},
            "spec": {"containers": [{"name": "ome-container", "image": image,
                                     "resources": resources}]},
            "status": {"phase": "Pending"},
        }

    def _reconcile_benchmark(self, namespace: str, name: str) -> None:
        job = self.get("benchmarkjobs", namespace, name)
        if job is None:
            return
        if job["metadata"].get("deletionTimestamp"):
            with self.lock:
                self.objects.pop(("benchmarkjobs", namespace, name), None)
            return
        if (job.get("status") or {}).get("state") in ("Completed", "Failed"):
            return
        spec = job["spec"]
        target = spec["endpoint"]["inferenceService"]
        isvc = self.get("inferenceservices", target["namespace"], target["name"])
        ready = isvc is not None and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (isvc.get("status") or {}).get("conditions", []))
        if not ready:
            self.set_status("benchmarkjobs", namespace, name, {"state": "Pending"})
            return
        uri = spec["outputLocation"]["storageUri"]
        pvc, _, subpath = uri.removeprefix("pvc://").partition("/")
        root = self.pvcs.get((namespace, pvc))
        if not uri.startswith("pvc://") or root is None or not subpath:
            self.set_status("benchmarkjobs", namespace, name, {
                "state": "Failed", "failureMessage": f"PVC {pvc} not found in {namespace}"})
            return
        folder = root / subpath / spec.get("resultFolderName", name)
        folder.mkdir(parents=True, exist_ok=True)
        for scenario in spec.get("trafficScenarios") or ["D(100,100)"]:
            for concurrency in spec.get("numConcurrency") or [1]:
                _write_result(folder, scenario, int(concurrency),
                              int(spec["maxRequestsPerIteration"]))
        self.set_status("benchmarkjobs", namespace, name, {
            "state": "Completed", "startTime": _now(), "completionTime": _now()})


def _write_result(folder: Path, scenario: str, concurrency: int, requests: int) -> None:
    """A genai-bench result file of the shape genai-bench writes (values made up)."""
    stats = {key: {"min": v, "max": v, "mean": v, "stddev": 0.0, "sum": v * requests,
                   "p25": v, "p50": v, "p75": v, "p90": v, "p95": v, "p99": v}
             for key, v in (("ttft", 0.2), ("tpot", 0.02), ("e2e_latency", 2.0))}
    sanitized = scenario.replace("(", "").replace(")", "").replace("/", "_").replace(",", "_")
    aggregated = {
        "scenario": scenario, "num_concurrency": concurrency, "run_duration": 60.0,
        "requests_per_second": 5.0, "mean_output_throughput_tokens_per_s": 500.0,
        "mean_input_throughput_tokens_per_s": 1000.0,
        "mean_total_tokens_throughput_tokens_per_s": 1500.0, "error_rate": 0.0,
        "num_error_requests": 0, "num_completed_requests": requests, "num_requests": requests,
        "stats": stats,
    }
    path = folder / f"{sanitized}_text-to-text_num_concurrency_{concurrency}_time_60s.json"
    path.write_text(json.dumps({"aggregated_metrics": aggregated,
                                "individual_request_metrics": [], "_time_unit": "s"}))


def _merged_runner(runtime: Json, isvc: Json) -> Json:
    """The runner OME derives: the runtime's, with the isvc's fields merged over it.

    ``command``/``args`` are replaced wholesale, ``resources`` merge key by key (as OME's
    strategic merge does for the fields the tuner uses).
    """
    base = copy.deepcopy(((runtime.get("spec") or {}).get("engineConfig") or {}).get(
        "runner") or {})
    override = ((isvc["spec"].get("engine") or {}).get("runner") or {})
    for key, value in override.items():
        if key == "resources":
            resources = base.setdefault("resources", {})
            for side, values in value.items():
                resources[side] = {**(resources.get(side) or {}), **values}
        else:
            base[key] = copy.deepcopy(value)
    return base


def _expand(word: str, env: dict[str, str]) -> str:
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


def _quantity(value: object) -> int:
    return int(float(str(value))) if value not in (None, "") else 0


def _pod_gpus(pod: Json) -> int:
    total = 0
    for container in pod["spec"].get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        total += _quantity(requests.get(GPU))
    return total


# --- HTTP -----------------------------------------------------------------------------------


def _app(cluster: FakeCluster) -> FastAPI:
    app = FastAPI()

    def listing(kind: str, items: list[Json]) -> JSONResponse:
        return JSONResponse({"apiVersion": "v1", "kind": kind,
                             "metadata": {"resourceVersion": "1"}, "items": items})

    def known(group: str, version: str, plural: str, namespaced: bool) -> JSONResponse | None:
        entry = cluster.schemas.kinds.get(plural)
        if group != "ome.io" or version != "v1beta1" or entry is None or entry[1] != namespaced:
            return _status(404, "NotFound", "the server could not find the requested resource")
        return None

    @app.get("/api/v1/nodes")
    def nodes(labelSelector: str | None = None, fieldSelector: str | None = None
              ) -> JSONResponse:
        with cluster.lock:
            items = [copy.deepcopy(n) for n in cluster.nodes.values()
                     if _matches(n, labelSelector, fieldSelector)]
        return listing("NodeList", items)

    def pods(namespace: str | None, label: str | None, field: str | None) -> JSONResponse:
        with cluster.lock:
            items = [copy.deepcopy(p) for (ns, _), p in sorted(cluster.pods.items())
                     if namespace in (None, ns) and _matches(p, label, field)]
        return listing("PodList", items)

    @app.get("/api/v1/pods")
    def all_pods(labelSelector: str | None = None, fieldSelector: str | None = None
                 ) -> JSONResponse:
        return pods(None, labelSelector, fieldSelector)

    @app.get("/api/v1/namespaces/{namespace}/pods")
    def namespaced_pods(namespace: str, labelSelector: str | None = None,
                        fieldSelector: str | None = None) -> JSONResponse:
        return pods(namespace, labelSelector, fieldSelector)

    @app.get("/api/v1/namespaces/{namespace}/events")
    def events(namespace: str, labelSelector: str | None = None,
               fieldSelector: str | None = None) -> JSONResponse:
        with cluster.lock:
            items = [copy.deepcopy(e) for e in cluster.events
                     if e["metadata"]["namespace"] == namespace
                     and _matches(e, labelSelector, fieldSelector)]
        return listing("EventList", items)

    @app.websocket("/api/v1/namespaces/{namespace}/pods/{name}/portforward")
    async def port_forward(websocket: WebSocket, namespace: str, name: str) -> None:
        await _port_forward(cluster, websocket, namespace, name)

    @app.post("/apis/{group}/{version}/namespaces/{namespace}/{plural}")
    async def create_namespaced(group: str, version: str, namespace: str, plural: str,
                                request: Request) -> JSONResponse:
        if missing := known(group, version, plural, True):
            return missing
        body = await request.json()
        code, result = await asyncio.to_thread(cluster.create, plural, namespace, body)
        return JSONResponse(result, status_code=code) if code < 300 else _status(
            code, result["reason"], result["message"])

    @app.post("/apis/{group}/{version}/{plural}")
    async def create_cluster(group: str, version: str, plural: str,
                             request: Request) -> JSONResponse:
        if missing := known(group, version, plural, False):
            return missing
        body = await request.json()
        code, result = await asyncio.to_thread(cluster.create, plural, "", body)
        return JSONResponse(result, status_code=code) if code < 300 else _status(
            code, result["reason"], result["message"])

    def read(plural: str, namespace: str, name: str) -> JSONResponse:
        obj = cluster.get(plural, namespace, name)
        if obj is None:
            return _status(404, "NotFound", f'{plural}.ome.io "{name}" not found')
        return JSONResponse(obj)

    def list_objects(plural: str, namespace: str | None, label: str | None) -> JSONResponse:
        items = [o for o in cluster.list(plural, namespace) if _matches(o, label, None)]
        kind = cluster.schemas.kinds[plural][0]
        return JSONResponse({"apiVersion": "ome.io/v1beta1", "kind": f"{kind}List",
                             "metadata": {"resourceVersion": "1"}, "items": items})

    def remove(plural: str, namespace: str, name: str) -> JSONResponse:
        code, result = cluster.delete(plural, namespace, name)
        return JSONResponse(result) if code < 300 else _status(code, result["reason"],
                                                                result["message"])

    @app.get("/apis/{group}/{version}/namespaces/{namespace}/{plural}")
    def list_namespaced(group: str, version: str, namespace: str, plural: str,
                        labelSelector: str | None = None) -> JSONResponse:
        return known(group, version, plural, True) or list_objects(plural, namespace,
                                                                   labelSelector)

    @app.get("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}")
    def get_namespaced(group: str, version: str, namespace: str, plural: str,
                       name: str) -> JSONResponse:
        return known(group, version, plural, True) or read(plural, namespace, name)

    @app.delete("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}")
    def delete_namespaced(group: str, version: str, namespace: str, plural: str,
                          name: str) -> JSONResponse:
        return known(group, version, plural, True) or remove(plural, namespace, name)

    @app.get("/apis/{group}/{version}/{plural}")
    def list_cluster(group: str, version: str, plural: str,
                     labelSelector: str | None = None) -> JSONResponse:
        return known(group, version, plural, False) or list_objects(plural, "",
                                                                    labelSelector)

    @app.get("/apis/{group}/{version}/{plural}/{name}")
    def get_cluster(group: str, version: str, plural: str, name: str) -> JSONResponse:
        return known(group, version, plural, False) or read(plural, "", name)

    @app.delete("/apis/{group}/{version}/{plural}/{name}")
    def delete_cluster(group: str, version: str, plural: str, name: str) -> JSONResponse:
        return known(group, version, plural, False) or remove(plural, "", name)

    return app


async def _port_forward(cluster: FakeCluster, websocket: WebSocket, namespace: str,
                        name: str) -> None:
    """``kubectl port-forward``'s protocol: per port a data and an error channel."""
    with cluster.lock:
        pod = cluster.pods.get((namespace, name))
        labels = (pod or {}).get("metadata", {}).get("labels", {})
        server = cluster._servers.get((namespace, labels.get("ome.io/inferenceservice", "")))
    ports = [int(p) for p in websocket.query_params.get("ports", "").split(",") if p]
    if server is None or server.port is None or len(ports) != 1:
        await websocket.close(code=1011)
        return
    await websocket.accept(subprotocol="v4.channel.k8s.io")
    header = ports[0].to_bytes(2, "little")
    await websocket.send_bytes(b"\x00" + header)
    await websocket.send_bytes(b"\x01" + header)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

    async def upstream() -> None:
        try:
            while True:
                frame = await websocket.receive_bytes()
                if frame[:1] == b"\x00":
                    writer.write(frame[1:])
                    await writer.drain()
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass

    async def downstream() -> None:
        try:
            while data := await reader.read(65536):
                await websocket.send_bytes(b"\x00" + data)
        except (RuntimeError, ConnectionError):
            pass

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    writer.close()
    try:
        await websocket.close()
    except RuntimeError:
        pass


def iter_yaml(path: Path) -> Iterator[Json]:
    """The documents of a YAML file, skipping empty ones."""
    yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)
