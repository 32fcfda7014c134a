"""Clean-up where the servers are: a trial's teardown on its node, a sweep on every node.

A ``NODE_LOCAL`` backend's servers are processes on the node whose trial actor started them,
with records on that node's disk; on a multi-host Ray cluster nothing else can see them. So
teardown and sweep run as Ray tasks pinned to those nodes (no CPU asked, so they never wait
behind trials). Other backends (a Kubernetes API) clean up from anywhere, in this process.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.backends.base import Backend

__all__ = ["alive_nodes", "node_answers", "node_units", "sweep_everywhere", "teardown_on"]

logger = logging.getLogger(__name__)
# Seconds a node gets to finish its part of a clean-up before it is reported as unreachable.
_CLEANUP_S = 120.0
# Seconds a node gets to run a no-op before it counts as lost: Ray itself declares a silent
# node dead only after its health checks fail for longer (about 15 s by default).
_PROBE_S = 10.0
# The key of the clean-up done in this process (no Ray, or a backend that is not node-local).
HERE = "here"


def alive_nodes() -> list[dict[str, Any]]:
    """The live nodes of the Ray cluster (``ray.nodes()`` entries)."""
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def node_units(resource: str) -> dict[str, int]:
    """Units of ``resource`` on each live node, by node id (nodes without any left out)."""
    units = {}
    for node in alive_nodes():
        count = int(node.get("Resources", {}).get(resource, 0))
        if count:
            units[str(node["NodeID"])] = count
    return units


def _use_nodes(backend: Backend) -> bool:
    import ray

    return backend.NODE_LOCAL and ray.is_initialized()


@functools.cache
def _tasks() -> tuple[Any, Any]:
    import ray

    from tuner.backends.base import current_node

    def teardown(backend: Backend, name: str) -> None:
        backend.teardown(name)

    def sweep(backend: Backend) -> tuple[str | None, list[str]]:
        return current_node(), backend.sweep()

    return ray.remote(num_cpus=0)(teardown), ray.remote(num_cpus=0)(sweep)


@functools.cache
def _ping() -> Any:
    import ray

    return ray.remote(num_cpus=0)(lambda: None)


def node_answers(node_id: str) -> bool:
    """Whether the node is in the cluster and runs a no-op within a few seconds (blocks up
    to that long: for the rare trial whose actor was lost)."""
    import ray

    if node_id not in {str(node["NodeID"]) for node in alive_nodes()}:
        return False
    try:
        ray.get(_on(_ping(), node_id).remote(), timeout=_PROBE_S)
    except Exception:  # unschedulable (gone), timed out (going): lost either way
        return False
    return True


def _on(task: Any, node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))


def teardown_on(backend: Backend, name: str, node_id: str | None) -> None:
    """Tear ``name`` down on the node that holds it (every live node when not known)."""
    if not _use_nodes(backend):
        backend.teardown(name)
        return
    import ray

    alive = [str(node["NodeID"]) for node in alive_nodes()]
    targets = [node_id] if node_id in alive else alive  # a lost node took its servers along
    teardown, _ = _tasks()
    refs = [_on(teardown, node).remote(backend, name) for node in targets]
    ready, late = ray.wait(refs, num_returns=len(refs), timeout=_CLEANUP_S)
    for ref in ready:
        try:
            ray.get(ref)
        except ray.exceptions.TaskUnschedulableError:  # the node left, with its servers
            logger.info("teardown of %s: its node left the cluster", name)
        except Exception:  # logged; the study's closing sweep tries again
            logger.exception("teardown of %s failed", name)
    if late:
        logger.error("teardown of %s did not finish on %d node(s)", name, len(late))


def sweep_everywhere(backend: Backend) -> dict[str, list[str]]:
    """Remove this study's leftovers on every live node; the deployments stopped, by node id
    (``here`` for a backend whose clean-up runs in this process). Every live node appears,
    with an empty list when it had nothing left."""
    if not _use_nodes(backend):
        return {HERE: backend.sweep()}
    import ray

    _, sweep = _tasks()
    refs = {str(n["NodeID"]): _on(sweep, str(n["NodeID"])).remote(backend) for n in alive_nodes()}
    swept: dict[str, list[str]] = {}
    for node_id, ref in refs.items():
        try:
            ran_on, names = ray.get(ref, timeout=_CLEANUP_S)
        except ray.exceptions.TaskUnschedulableError:  # it left meanwhile, with its servers
            continue
        except Exception:  # an unreachable node: say so, the next sweep tries again
            logger.exception("sweep of study %s on node %s failed", backend.study_id, node_id)
            continue
        swept[str(ran_on)] = names
    return swept
