"""Runs genai-bench's CLI with its end-of-run Excel and plot reports turned off.

Tuning reads only the per-level JSON; the reports cost 10-20 s per invocation. This module is
started as its own process (genai-bench monkey-patches the interpreter with gevent on import).
"""

import sys

from genai_bench.cli import cli as genai_cli


def _skip(*args: object, **kwargs: object) -> None:
    return None


genai_cli.create_workbook = _skip
genai_cli.plot_experiment_data_flexible = _skip
genai_cli.plot_single_scenario_inference_speed_vs_throughput = _skip

if __name__ == "__main__":
    sys.exit(genai_cli.cli())
