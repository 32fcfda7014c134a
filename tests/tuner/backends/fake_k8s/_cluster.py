"""The fake cluster's state and verbs: namespaces, nodes, pods, events and OME's objects."""

from __future__ import annotations

import copy
import itertools
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import uvicorn
import yaml

from ._apiserver import app
from ._controller import Controller
from ._objects import GPU, make_pod, now, pod_gpus
from ._schemas import CrdSchemas, Json, webhook_errors


class FakeCluster:
    """A fake cluster with OME installed; see the module docstring.

    Attributes:
        pruned: ``"<plural>/<name>: <path>"`` for every field pruned from a created object.
        rejected: the message of every 422 answer.
        created: every custom object as the client sent it.
        max_gpus_in_use: the most GPUs scheduled pods held at once.
        requests: ``(API group, resource, verb)`` of every API request, as RBAC checks it.
        benchmark_commands: the genai-bench argv OME would run, per BenchmarkJob.
        mutate: a mutating admission webhook of the cluster's own (a policy engine's), given
            each custom object before it is validated; None: none.
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
        self._counter = itertools.count(1)
        self.stopped = threading.Event()
        self.requests: list[tuple[str, str, str]] = []
        self.benchmark_commands: dict[tuple[str, str], list[str]] = {}
        self.mutate: Callable[[str, Json], None] | None = None
        self.controller = Controller(self)
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._uvicorn = uvicorn.Server(uvicorn.Config(app(self), log_level="warning",
                                                      lifespan="off", ws="websockets-sansio"))
        self._threads: list[threading.Thread] = []

    # --- setup ------------------------------------------------------------------------------

    def start(self) -> FakeCluster:
        self._threads = [
            threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self._socket]},
                             daemon=True),
            threading.Thread(target=self.controller.run, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            assert time.monotonic() < deadline, "the fake API server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.stopped.set()
        self._uvicorn.should_exit = True
        for thread in self._threads:
            thread.join(10)
        self.controller.stop_servers()
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
        pod = make_pod(namespace, name, labels or {}, gpus, image="busybox")
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
            return sum(pod_gpus(p) for p in self.pods.values()
                       if p["spec"].get("nodeName") and p["status"]["phase"] in
                       ("Pending", "Running"))

    def processes(self) -> list[subprocess.Popen[bytes]]:
        with self.lock:
            return [s.process for s in self.controller.servers.values()]

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
                    event["lastTimestamp"] = now()
                    return
            self.events.append({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name}.{next(self._counter):x}", "namespace": namespace,
                             "uid": str(uuid.uuid4())},
                "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
                "reason": reason, "message": message, "type": type_, "count": 1,
                "firstTimestamp": now(), "lastTimestamp": now(),
                "source": {"component": "fake-ome"},
            })

    # --- API verbs --------------------------------------------------------------------------

    def create(self, plural: str, namespace: str, body: Json) -> tuple[int, Json]:
        self.created.append(copy.deepcopy(body))
        if namespace and namespace not in self.namespaces:
            return 404, {"reason": "NotFound", "message": f'namespaces "{namespace}" not found'}
        if self.mutate is not None:
            body = copy.deepcopy(body)
            self.mutate(plural, body)
        stored, pruned, errors = self.schemas.admit(plural, body)
        errors += webhook_errors(plural, stored)
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
                        resourceVersion=str(next(self._counter)), creationTimestamp=now())
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
                obj["metadata"].setdefault("deletionTimestamp", now())
            else:
                del self.objects[(plural, namespace, name)]
            return 200, copy.deepcopy(obj)
