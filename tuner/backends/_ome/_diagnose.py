"""Readings of cluster objects (plain JSON): why an InferenceService is not up, and free GPUs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tuner.backends import _sglang_log
from tuner.backends._ome._render import GPU_KEY, ISVC_LABEL

__all__ = [
    "events_text",
    "failure",
    "fatal_event",
    "free_gpus",
    "is_ready",
    "kubectl_hint",
    "pod_failure",
    "probe_restart",
    "probe_text",
    "startup_probe_budget",
    "state_text",
    "warning_events",
]

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


def is_ready(status: Mapping[str, Any]) -> bool:
    """Whether an object's status has the condition ``Ready=True``."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def failure(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """A failure recorded in ``status.modelStatus`` that waiting will not fix: (text, reason)."""
    model = status.get("modelStatus") or {}
    info = model.get("lastFailureInfo") or {}
    if info.get("reason") in _FATAL_FAILURES:
        # The message is the container's termination message: the log tail under the
        # FallbackToLogsOnError policy the isvc sets, of which one line says why.
        text = f"{info['reason']}: {_message(info.get('message'))}"
        if info.get("exitCode") is not None:
            text += f" (exit code {info['exitCode']})"
        return text, _reason_class(text)
    if model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
        text = f"model status {model['transitionStatus']}: {_message(info.get('message'))}"
        return text, _reason_class(text)
    return None


def pod_failure(pods: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Why an engine container cannot start, when that is already certain: (text, reason)."""
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
                    f"{_message(ended.get('message'))}"
                )
                return text, _reason_class(text)
            if waiting.get("reason") in _FATAL_WAITING:
                return f"{waiting['reason']}: {waiting.get('message', '')}", "startup"
    return None


def probe_restart(
    pods: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
) -> str | None:
    """The kubelet's word that it killed an engine container for failing its startup probe.

    That restart is the runtime's start-up deadline passing, not the server's verdict on its
    flags: the container ends with whatever status the kill gave it (137 after SIGKILL).
    """
    names = {str(pod["metadata"]["name"]) for pod in pods if _restarted(pod)}
    for event in events:
        target = str((event.get("involvedObject") or {}).get("name") or "")
        message = str(event.get("message") or "")
        if target in names and event.get("reason") == "Killing" and "startup probe" in message:
            return f"{target}: {message}"
    return None


def _restarted(pod: Mapping[str, Any]) -> bool:
    return any(
        status.get("restartCount") or (status.get("lastState") or {}).get("terminated")
        for status in (pod.get("status") or {}).get("containerStatuses") or []
    )


def startup_probe_budget(runtime: Mapping[str, Any]) -> tuple[float, str] | None:
    """How long the runtime's engine ``startupProbe`` lets a server start before the kubelet
    restarts it: (seconds, the sum as text); None without a startup probe.

    ``initialDelaySeconds + periodSeconds x failureThreshold``, with the Kubernetes
    defaults (0, 10, 3) for what the probe leaves out.
    """
    engine = ((runtime.get("spec") or {}).get("engineConfig") or {}).get("runner") or {}
    probe = engine.get("startupProbe")
    if not probe:
        return None
    delay = int(probe.get("initialDelaySeconds") or 0)
    period = int(probe.get("periodSeconds") or 10)
    failures = int(probe.get("failureThreshold") or 3)
    total = delay + period * failures
    return float(total), f"{delay} + {failures} x {period} = {total} s"


def probe_text(runtime: str, budget: tuple[float, str] | None, timeout_s: float) -> str:
    """Why a start-up ended at the runtime's startup probe, and what to do (a clause)."""
    allows = f"allows {budget[1]}" if budget else "has a startupProbe"
    return (
        f"runtime {runtime}'s engine startupProbe {allows} before the kubelet restarts the "
        f"server, and backend.startup_timeout_s ({timeout_s:g} s) cannot extend that: raise "
        "startupProbe.failureThreshold in the runtime if the server was still loading"
    )


def warning_events(
    events: Sequence[Mapping[str, Any]], name: str
) -> list[tuple[str, str, str, str]]:
    """The Warning events of isvc ``name`` and its pods, oldest first.

    Returns:
        ``(time, text, uid, object name)`` per event.
    """
    found: list[tuple[str, str, str, str]] = []
    for event in events:
        target = str((event.get("involvedObject") or {}).get("name") or "")
        if event.get("type") != "Warning":
            continue
        if target != name and not target.startswith(f"{name}-engine-"):
            continue
        when = str(event.get("lastTimestamp") or event.get("eventTime") or "")
        text = f"{event.get('reason')}: {event.get('message', '').strip()}"
        found.append((when, text, str(event["metadata"].get("uid") or text), target))
    return sorted(found)


def fatal_event(warnings: list[str]) -> tuple[str, str] | None:
    """The first warning after which OME only retries the same thing: (text, reason)."""
    for text in warnings:
        if text.split(":", 1)[0] in _FATAL_EVENTS:
            return text, "startup"
    return None


def _message(text: object) -> str:
    """The line of a termination message (an SGLang log tail) that says why it ended."""
    return _sglang_log.explain(str(text)) if text and str(text).strip() else "no message"


def _reason_class(text: str) -> str:
    return "oom" if _sglang_log.is_oom(text) else "startup"


def state_text(status: Mapping[str, Any]) -> str:
    """The conditions and last failure of a status, in one line."""
    conditions = [
        f"{c.get('type')}={c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else "")
        for c in status.get("conditions") or []
    ]
    info = (status.get("modelStatus") or {}).get("lastFailureInfo") or {}
    if info:
        conditions.append(f"lastFailureInfo {info.get('reason')}: {info.get('message', '')}")
    return "; ".join(conditions) or "no status yet"


def events_text(warnings: list[str]) -> str:
    """The last five warnings, as a clause to append to a message."""
    return "; events: " + " | ".join(warnings[-5:]) if warnings else ""


def kubectl_hint(namespace: str, name: str) -> str:
    """The kubectl commands that show more about an InferenceService."""
    return (
        f"see `kubectl describe inferenceservice -n {namespace} {name}` and `kubectl logs "
        f"-n {namespace} -l {ISVC_LABEL}={name}`"
    )


def free_gpus(
    nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> dict[str, int]:
    """Free GPUs per Ready, schedulable node labelled ``<key>=Ready`` for one of ``keys``.

    Free means allocatable minus what the unfinished ``pods`` on the node request.
    """
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
    return free


def _schedulable(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    return is_ready(node.get("status") or {})


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
