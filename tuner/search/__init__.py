"""Search: algorithms keyed by ``search.algorithm``, the twin pre-screen, early stopping on the
concurrency ladder, winner confirmation and parameter importance."""

from tuner.search._budget import GpuBudgetLimiter
from tuner.search._confirm import Candidate, Estimate, Verdict, judge, top_trials
from tuner.search._early_stop import LadderRule, LadderScheduler
from tuner.search._importance import param_importance
from tuner.search._prescreen import Prediction, Prescreen, prescreen
from tuner.search._searchers import (
    FAILED_EXCESS,
    SEARCHERS,
    ListSearcher,
    OptunaSearcher,
    make_searcher,
)
from tuner.search._space import Space, config_key

__all__ = [
    "FAILED_EXCESS",
    "SEARCHERS",
    "Candidate",
    "Estimate",
    "GpuBudgetLimiter",
    "LadderRule",
    "LadderScheduler",
    "ListSearcher",
    "OptunaSearcher",
    "Prediction",
    "Prescreen",
    "Space",
    "Verdict",
    "config_key",
    "judge",
    "make_searcher",
    "param_importance",
    "prescreen",
    "top_trials",
]
