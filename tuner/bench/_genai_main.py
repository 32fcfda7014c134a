"""Runs genai-bench's CLI with its end-of-run Excel and plot reports turned off.

Tuning reads only the per-level JSON; the reports cost 10-20 s per invocation. This file is run
as a script in its own process, not as ``-m tuner...``: genai-bench monkey-patches the interpreter
with gevent on import, which must happen before anything imports ``ssl`` (the tuner package does,
and a late patch sends SSLContext into endless recursion).
"""

import sys

sys.path.pop(0)  # this file's folder: its modules must not shadow genai-bench's imports

from genai_bench.cli import cli as genai_cli  # noqa: E402


def _skip(*args: object, **kwargs: object) -> None:
    return None


genai_cli.create_workbook = _skip
genai_cli.plot_experiment_data_flexible = _skip
genai_cli.plot_single_scenario_inference_speed_vs_throughput = _skip

if __name__ == "__main__":
    sys.exit(genai_cli.cli())
