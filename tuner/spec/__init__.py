"""The study spec: the one schema that files, the API, the UI and Python code all use."""

from tuner.spec._backends import (
    BackendSpec,
    EstimateBackendSpec,
    LocalBackendSpec,
    OmeBackendSpec,
    OmeBenchmarkJobSpec,
    TwinBackendSpec,
)
from tuner.spec._base import GPU_TYPES
from tuner.spec._load import from_prototype_task, load_spec, spec_from_dict
from tuner.spec._overrides import override
from tuner.spec._parts import (
    COST_METRIC,
    SEARCH_ALGORITHMS,
    SLO,
    ConfirmSpec,
    ModelSpec,
    ObjectiveSpec,
    PrescreenSpec,
    SearchSpec,
    WorkloadSpec,
)
from tuner.spec._study import DEFAULT_MAX_TRIALS, RangeSpec, StudySpec

__all__ = [
    "COST_METRIC",
    "DEFAULT_MAX_TRIALS",
    "GPU_TYPES",
    "SEARCH_ALGORITHMS",
    "SLO",
    "BackendSpec",
    "ConfirmSpec",
    "EstimateBackendSpec",
    "LocalBackendSpec",
    "ModelSpec",
    "ObjectiveSpec",
    "OmeBackendSpec",
    "OmeBenchmarkJobSpec",
    "PrescreenSpec",
    "RangeSpec",
    "SearchSpec",
    "StudySpec",
    "TwinBackendSpec",
    "WorkloadSpec",
    "from_prototype_task",
    "load_spec",
    "override",
    "spec_from_dict",
]
