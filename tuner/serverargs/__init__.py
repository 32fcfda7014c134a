"""SGLang ``launch_server`` flags: the table generated from SGLang's source per version, our own
limits for the flags we search numerically, SGLang's start-up rules, and the argv they become.

A trial config is a dict of typed values keyed by the flag's ServerArgs name (dashes as
underscores); ``to_argv`` is the one place that turns it into command-line words.
"""

from tuner.serverargs._check import LIMITS, MANAGED, Limit, check_value, suggest, to_argv
from tuner.serverargs._rules import (
    SM100_GPUS,
    auto_chunk_sizes,
    gpu_problem,
    startup_problem,
)
from tuner.serverargs._table import (
    Flag,
    FlagTable,
    default_version,
    table,
    twin_modelled,
    versions,
)

__all__ = [
    "LIMITS",
    "MANAGED",
    "SM100_GPUS",
    "Flag",
    "FlagTable",
    "Limit",
    "auto_chunk_sizes",
    "check_value",
    "default_version",
    "gpu_problem",
    "startup_problem",
    "suggest",
    "table",
    "to_argv",
    "twin_modelled",
    "versions",
]
