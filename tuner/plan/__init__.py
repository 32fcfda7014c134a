"""Capacity planning: the cheapest GPUs, count, layout and flags that serve a target load within
an SLO, predicted by the twin's estimator in process (``autotuner plan``)."""

from tuner.plan._load import load_plan, plan_from_dict
from tuner.plan._plot import plot
from tuner.plan._result import Candidate, PlanResult
from tuner.plan._search import plan
from tuner.plan._spec import GpuSearch, PlanSpec, PlanWorkload, VerifySpec
from tuner.plan._verify import Verified, unmeasurable, verification_spec, verify
from tuner.prices import default_prices

__all__ = [
    "Candidate",
    "GpuSearch",
    "PlanResult",
    "PlanSpec",
    "PlanWorkload",
    "Verified",
    "VerifySpec",
    "default_prices",
    "load_plan",
    "plan",
    "plan_from_dict",
    "plot",
    "unmeasurable",
    "verification_spec",
    "verify",
]
