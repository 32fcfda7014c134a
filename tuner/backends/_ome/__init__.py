"""The ``ome`` backend: one OME InferenceService per trial on a Kubernetes cluster."""

from tuner.backends._ome._backend import OmeBackend
from tuner.backends._ome._render import (
    DRY_RUN_TRIAL,
    BenchmarkJobVariables,
    IsvcVariables,
    RuntimeVariables,
    model_label_keys,
)

__all__ = [
    "DRY_RUN_TRIAL",
    "BenchmarkJobVariables",
    "IsvcVariables",
    "OmeBackend",
    "RuntimeVariables",
    "model_label_keys",
]
