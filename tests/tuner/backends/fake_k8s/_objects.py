"""Kubernetes objects as the fake builds and reads them: timestamps, pods, GPUs, selectors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ._schemas import Json

GPU = "nvidia.com/gpu"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_pod(namespace: str, name: str, labels: dict[str, str], gpus: int, *,
             image: str) -> Json:
    """A pod of one container (``ome-container``) holding ``gpus``, not yet scheduled."""
    resources = {"requests": {GPU: str(gpus)}, "limits": {GPU: str(gpus)}} if gpus else {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "uid": str(uuid.uuid4()), "creationTimestamp": now()},
        "spec": {"containers": [{"name": "ome-container", "image": image,
                                 "resources": resources}]},
        "status": {"phase": "Pending"},
    }


def quantity(value: object) -> int:
    return int(float(str(value))) if value not in (None, "") else 0


def pod_gpus(pod: Json) -> int:
    total = 0
    for container in pod["spec"].get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        total += quantity(requests.get(GPU))
    return total


def _get_path(obj: Json, dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def matches(obj: Json, label_selector: str | None, field_selector: str | None) -> bool:
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
