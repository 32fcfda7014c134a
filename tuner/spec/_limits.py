"""Upper bounds on a spec's sizes and durations: far above any real study, low enough that
validating and storing a spec stays cheap and no study can run for years.

Each bound is answered as a validation error naming the field (HTTP 422 in the service).
Constraint expressions have their own bounds in ``tuner.spec._expr``.
"""

from __future__ import annotations

__all__ = [
    "MAX_CONCURRENCY",
    "MAX_CONSTRAINTS",
    "MAX_GRID_POINTS",
    "MAX_LEVELS",
    "MAX_LIST_VALUES",
    "MAX_REQUESTS_PER_LEVEL",
    "MAX_SCENARIOS",
    "MAX_SECONDS_PER_LEVEL",
    "MAX_STARTUP_TIMEOUT_S",
    "MAX_TIME_BUDGET_S",
    "MAX_TRIALS",
    "MAX_TRIAL_TIMEOUT_S",
]

# Values of one searched flag: real spaces list under 20.
MAX_LIST_VALUES = 1_000
# Traffic scenarios and concurrency levels: each one is measured on every trial.
MAX_SCENARIOS = 100
MAX_LEVELS = 100
# Concurrent requests of one level: beyond what one genai-bench process can drive.
MAX_CONCURRENCY = 10_000
MAX_REQUESTS_PER_LEVEL = 100_000
# One level measures for at most an hour (genai-bench counts whole minutes).
MAX_SECONDS_PER_LEVEL = 3_600
MAX_CONSTRAINTS = 100
# Trials of one study, and so of a grid: at minutes per trial, 10,000 is weeks of GPU time.
MAX_TRIALS = 10_000
# Points of a grid before constraints, computed without enumerating it; enumerating this
# many takes about a second.
MAX_GRID_POINTS = 100_000
# A server that is not healthy within a day will not become healthy.
MAX_STARTUP_TIMEOUT_S = 86_400.0
# One trial within a week; a whole study within 30 days.
MAX_TRIAL_TIMEOUT_S = 7 * 86_400.0
MAX_TIME_BUDGET_S = 30 * 86_400.0
