"""``autotuner cluster-check``: can this Ray cluster run a spec's trials, node by node?"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner import backends
from tuner._nodes import alive_nodes
from tuner._ray import init_ray
from tuner.exceptions import TunerError

if TYPE_CHECKING:
    from tuner.spec import StudySpec

__all__ = ["check_cluster"]

# Seconds one node gets to run its check (an interpreter probe imports sglang: seconds).
_CHECK_S = 120.0


@functools.cache
def _node_check() -> Any:
    import ray

    def check(backend: backends.Backend) -> str | None:
        try:
            backend.preflight()
        except TunerError as e:
            return str(e)
        path = backend.spec.model.model_path
        if backend.NODE_LOCAL and path.startswith("/") and not Path(path).exists():
            return f"model.path {path} does not exist on this node"
        return None

    return ray.remote(num_cpus=0)(check)


def check_cluster(spec: StudySpec, *, ray_address: str | None = None) -> dict[str, Any]:
    """Each live node with its trial units and whether it can run the spec's servers, and
    whether the study fits the cluster (every config on one node).

    Returns:
        ``{"ok", "verdict", "resource", "nodes": [{"node_id", "address", "units",
        "problem"}]}``; ``problem`` is None on a node that is ready.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from tuner.study import check_placement

    backend = backends.make(spec, study_id="cluster-check", workdir=Path(tempfile.mkdtemp()))
    init_ray(gpus=backend.gpu_capacity(), address=ray_address)
    resource = backend.GPU_RESOURCE
    nodes = []
    for node in alive_nodes():
        node_id = str(node["NodeID"])
        units = int(node.get("Resources", {}).get(resource, 0))
        problem: str | None = None
        if units:
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            ref = _node_check().options(scheduling_strategy=strategy).remote(backend)
            try:
                problem = ray.get(ref, timeout=_CHECK_S)
            except Exception as e:  # the node could not run the check at all
                problem = f"the check did not run: {type(e).__name__}: {e}"
        nodes.append({"node_id": node_id, "address": str(node.get("NodeManagerAddress")),
                      "units": units, "problem": problem})
    try:
        check_placement(spec, backend)
        verdict, ok = "every config of the study fits on one node", True
    except TunerError as e:
        verdict, ok = str(e), False
    broken = [n for n in nodes if n["units"] and n["problem"] is not None]
    if broken:
        ok = False
        verdict += f"; {len(broken)} node(s) cannot run its servers (see above)"
    if not any(n["units"] for n in nodes):
        ok = False
    return {"ok": ok, "verdict": verdict, "resource": resource, "nodes": nodes}
