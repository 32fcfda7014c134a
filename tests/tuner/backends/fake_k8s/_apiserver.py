"""The fake cluster's HTTP API, as the real ``kubernetes`` client calls it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse

from ._objects import matches
from ._portforward import relay_port
from ._schemas import Json

if TYPE_CHECKING:
    from ._cluster import FakeCluster


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Failure", "message": message, "reason": reason,
                         "code": code}, status_code=code)


def rbac_request(method: str, path: str) -> tuple[str, str, str]:
    """What RBAC checks for a request: ``(API group, resource[/subresource], verb)``."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource = "/".join(rest[:1] + rest[2:3])
    named = len(rest) > 1
    verb = {"GET": "get" if named else "list", "POST": "create", "PUT": "update",
            "PATCH": "patch", "DELETE": "delete" if named else "deletecollection"}[method]
    return group, resource, verb


def app(cluster: FakeCluster) -> FastAPI:
    """The HTTP API of ``cluster``: the core and ``ome.io`` paths the backend calls.

    Every request is logged in ``cluster.requests`` as RBAC sees it (see ``rbac_request``).
    """
    app = FastAPI()

    @app.middleware("http")
    async def log(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                  ) -> Response:
        cluster.requests.append(rbac_request(request.method, request.url.path))
        return await call_next(request)

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
                     if matches(n, labelSelector, fieldSelector)]
        return listing("NodeList", items)

    def pods(namespace: str | None, label: str | None, field: str | None) -> JSONResponse:
        with cluster.lock:
            items = [copy.deepcopy(p) for (ns, _), p in sorted(cluster.pods.items())
                     if namespace in (None, ns) and matches(p, label, field)]
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
                     and matches(e, labelSelector, fieldSelector)]
        return listing("EventList", items)

    @app.websocket("/api/v1/namespaces/{namespace}/pods/{name}/portforward")
    async def port_forward(websocket: WebSocket, namespace: str, name: str) -> None:
        # kubectl's RBAC for a port-forward: create on pods/portforward.
        cluster.requests.append(("", "pods/portforward", "create"))
        await relay_port(cluster, websocket, namespace, name)

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
        items = [o for o in cluster.list(plural, namespace) if matches(o, label, None)]
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
