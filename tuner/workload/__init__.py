"""Real traffic as a workload: prompt files for every level, and workloads fitted to logs."""

from tuner.workload._fit import PERCENTILES, TOLERANCE, Fit, fit_scenario, scenario_percentiles
from tuner.workload._from_log import FromLog, from_log, percentile_table
from tuner.workload._lengths import dataset_lengths, tokenizer_dir
from tuner.workload._log import FIELDS, RequestLog, read_log
from tuner.workload._prompts import (
    MAX_DATASET_BYTES,
    check_dataset,
    read_prompts,
    write_for_genai_bench,
)
from tuner.workload._summary import histogram_lines

__all__ = [
    "FIELDS",
    "MAX_DATASET_BYTES",
    "PERCENTILES",
    "TOLERANCE",
    "Fit",
    "FromLog",
    "RequestLog",
    "check_dataset",
    "dataset_lengths",
    "fit_scenario",
    "from_log",
    "histogram_lines",
    "percentile_table",
    "read_log",
    "read_prompts",
    "scenario_percentiles",
    "tokenizer_dir",
    "write_for_genai_bench",
]
