"""The Kubernetes API calls of the ``ome`` backend; the only module that imports the client."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.incluster_config import SERVICE_TOKEN_FILENAME
from kubernetes.stream import portforward

from tuner.backends._ome._poll import Poll
from tuner.exceptions import BackendError
from tuner.spec import OmeBackendSpec

__all__ = ["GROUP", "VERSION", "Kube", "api_error"]

GROUP = "ome.io"
VERSION = "v1beta1"


class Kube:
    """The API of one study's cluster, in ``backend.namespace``; every refusal a BackendError.

    The client is built on first use from in-cluster config or a kubeconfig.
    """

    def __init__(self, backend: OmeBackendSpec) -> None:
        self.backend = backend
        self.namespace = backend.namespace
        self._api: k8s.ApiClient | None = None

    def in_cluster(self) -> bool:
        """Whether servers are reached as Services: ``backend.in_cluster``, else inside a pod."""
        if self.backend.in_cluster is not None:
            return self.backend.in_cluster
        return _inside_pod()

    def call(self, action: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API; a raw response (``_preload_content=False``) comes back as JSON.

        Raises:
            BackendError: the call was refused, or the API server cannot be reached.
        """
        try:
            result = method(*args, **kwargs)
        except ApiException as e:
            raise api_error(e, action) from e
        except urllib3.exceptions.HTTPError as e:
            raise BackendError(
                f"cannot reach the Kubernetes API to {action} ({e}); check that the cluster is "
                "up and backend.kubeconfig / backend.kube_context point at it",
                reason="startup",
            ) from e
        if isinstance(result, urllib3.BaseHTTPResponse):
            return json.loads(result.data)
        return result

    # --- core objects ----------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """Every node of the cluster."""
        core = k8s.CoreV1Api(self._client())
        return _items(self.call("list nodes", core.list_node, _preload_content=False))

    def pods(
        self, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """The pods of the namespace that match the selectors."""
        core = k8s.CoreV1Api(self._client())
        return _items(
            self.call(
                "list pods",
                core.list_namespaced_pod,
                self.namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                _preload_content=False,
            )
        )

    def unfinished_pods(self) -> list[dict[str, Any]]:
        """The pods of every namespace that have not Succeeded or Failed."""
        core = k8s.CoreV1Api(self._client())
        return _items(
            self.call(
                "list pods",
                core.list_pod_for_all_namespaces,
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
                _preload_content=False,
            )
        )

    def events(self) -> list[dict[str, Any]]:
        """The events of the namespace."""
        core = k8s.CoreV1Api(self._client())
        return _items(
            self.call(
                "list events", core.list_namespaced_event, self.namespace, _preload_content=False
            )
        )

    def port_forward(self, pod: str, port: int) -> socket.socket:
        """A socket to ``port`` of ``pod``, through the API server.

        Raises:
            BackendError: the API server refused the port-forward.
        """
        core = k8s.CoreV1Api(self._client())
        try:
            forward = portforward(
                core.connect_get_namespaced_pod_portforward, pod, self.namespace, ports=str(port)
            )
            remote: socket.socket = forward.socket(port)
        except ApiException as e:
            raise api_error(e, f"port-forward to pod {self.namespace}/{pod}") from e
        remote.setblocking(True)
        return remote

    # --- OME objects -----------------------------------------------------------------------

    def create(
        self, plural: str, kind: str, body: dict[str, Any], *, exist_ok: bool = False
    ) -> bool:
        """Create a namespaced OME object; False if it existed and ``exist_ok``.

        Raises:
            BackendError: the API server refused it (namespace missing, RBAC, schema).
        """
        custom = k8s.CustomObjectsApi(self._client())
        action = f"create {kind} {self.namespace}/{body['metadata']['name']}"
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)
        except ApiException as e:
            if e.status == 409 and exist_ok:
                return False
            raise api_error(e, action) from e
        return True

    def read(self, plural: str, name: str, *, action: str | None = None) -> dict[str, Any] | None:
        """A namespaced OME object, or None if there is none.

        Raises:
            BackendError: the read was refused for another reason than 404.
        """
        custom = k8s.CustomObjectsApi(self._client())
        try:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise api_error(e, action or f"read {plural} {self.namespace}/{name}") from e
        return cast(dict[str, Any], obj)

    def runtime(self, name: str) -> dict[str, Any]:
        """The serving runtime ``name``: the namespaced one shadows the cluster one, as in OME.

        Raises:
            BackendError: neither exists, or the cluster cannot be read.
        """
        custom = k8s.CustomObjectsApi(self._client())
        try:
            return cast(
                dict[str, Any],
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "servingruntimes", name
                ),
            )
        except ApiException as e:
            if e.status not in (403, 404):
                raise api_error(e, f"read ServingRuntime {self.namespace}/{name}") from e
        return cast(
            dict[str, Any],
            self.call(
                f"read ClusterServingRuntime {name}",
                custom.get_cluster_custom_object,
                GROUP,
                VERSION,
                "clusterservingruntimes",
                name,
            ),
        )

    def names(self, plural: str, selector: str, *, what: str | None = None) -> list[str]:
        """The names of the namespaced OME objects that match a label selector."""
        custom = k8s.CustomObjectsApi(self._client())
        found = self.call(
            f"list {what or plural}",
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            label_selector=selector,
        )
        return [item["metadata"]["name"] for item in found.get("items", [])]

    def delete(self, plural: str, name: str) -> None:
        """Delete a namespaced OME object in the background; one that is gone is fine."""
        custom = k8s.CustomObjectsApi(self._client())
        try:
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name, propagation_policy="Background"
            )
        except ApiException as e:
            if e.status != 404:
                raise api_error(e, f"delete {plural} {self.namespace}/{name}") from e

    def delete_labelled(self, plural: str, selector: str) -> None:
        """Delete every namespaced OME object that matches a label selector."""
        for name in self.names(plural, selector):
            self.delete(plural, name)

    def wait_gone(self, plural: str, name: str) -> None:
        """Wait until a deleted object is gone (its finalizers ran).

        Raises:
            BackendError: it was still there after ``backend.teardown_timeout_s``.
        """
        poll = Poll(self.backend.teardown_timeout_s)
        while self.read(plural, name) is not None:
            if poll.expired:
                raise BackendError(
                    f"{plural} {self.namespace}/{name} was not deleted "
                    f"in {self.backend.teardown_timeout_s:g} s; is the OME "
                    "controller running?",
                    reason="timeout",
                )
            poll.sleep()

    def _client(self) -> k8s.ApiClient:
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


def _inside_pod() -> bool:
    token = Path(SERVICE_TOKEN_FILENAME)
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and token.exists()


def _items(listing: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(listing.get("items") or [])


def api_error(error: ApiException, action: str) -> BackendError:
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
