"""OME Autotuner: find the best SGLang serving flags for a model, a workload and SLOs."""

from tuner import backends, events, exceptions
from tuner._cluster_check import check_cluster
from tuner._home import datasets_dir, default_store_path
from tuner._lifecycle import StopToken, finish_study, interrupt_orphans
from tuner._ray import init_ray
from tuner._result import StudyResult, launch_text
from tuner.api import Study
from tuner.exceptions import TunerError
from tuner.plan import PlanResult, PlanSpec, plan
from tuner.spec import StudySpec, load_spec
from tuner.store import TrialRecord, TrialState, open_store
from tuner.study import create_study, run_study

__version__ = "0.1.0"

__all__ = [
    "StopToken",
    "PlanResult",
    "PlanSpec",
    "Study",
    "StudyResult",
    "StudySpec",
    "TrialRecord",
    "TrialState",
    "TunerError",
    "__version__",
    "backends",
    "check_cluster",
    "create_study",
    "datasets_dir",
    "default_store_path",
    "events",
    "exceptions",
    "finish_study",
    "init_ray",
    "interrupt_orphans",
    "launch_text",
    "load_spec",
    "open_store",
    "plan",
    "run_study",
]
