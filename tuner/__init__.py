"""OME Autotuner: find the best SGLang serving flags for a model, a workload and SLOs."""

from tuner import backends, exceptions
from tuner._ray import init_ray
from tuner.api import Study
from tuner.exceptions import TunerError
from tuner.spec import StudySpec, load_spec
from tuner.store import TrialRecord, TrialState, open_store
from tuner.study import StudyResult, create_study, launch_text, request_stop, run_study

__version__ = "0.1.0"

__all__ = [
    "Study",
    "StudyResult",
    "StudySpec",
    "TrialRecord",
    "TrialState",
    "TunerError",
    "__version__",
    "backends",
    "create_study",
    "exceptions",
    "init_ray",
    "launch_text",
    "load_spec",
    "open_store",
    "request_stop",
    "run_study",
]
