"""Search algorithms, keyed by ``search.algorithm``."""

from tuner.search._budget import GpuBudgetLimiter
from tuner.search._searchers import SEARCHERS, make_searcher

__all__ = ["SEARCHERS", "GpuBudgetLimiter", "make_searcher"]
