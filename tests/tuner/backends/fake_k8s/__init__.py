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
  when the process dies, the kubelet's termination record (``_kubelet.py``: exit code, the log
  tail as message under ``FallbackToLogsOnError``), a ``BackOff`` event and OME's
  ``status.modelStatus.lastFailureInfo`` are. A runner ``startupProbe`` is run as the kubelet
  runs it, and an AcceleratorClass the isvc selects applies the runtime's
  ``tensorParallelismOverride`` as OME does.
* Deleting an isvc kills its process; its pod lingers ``pod_grace_s`` (Terminating), then goes.
* A BenchmarkJob waits for its isvc to be Ready, records the genai-bench command OME would
  run, then writes a genai-bench-shaped result into the directory registered for its PVC
  (outputs cut at EOS unless the command's ``--api-backend`` sends ``ignore_eos``) and
  completes (``_benchmark.py``).
* ``pods/portforward`` speaks the ``v4.channel.k8s.io`` websocket protocol to the pod's process.
"""


from ._cluster import FakeCluster
from ._controller import expand, merged_runner
from ._objects import matches
from ._schemas import OME_DIR, REPO, CrdSchemas, iter_yaml

__all__ = ["OME_DIR", "REPO", "CrdSchemas", "FakeCluster", "expand", "iter_yaml", "matches",
           "merged_runner"]
