"""The capacity planner's speed: configs estimated per second, and the issue-15 plan's wall time.

Run: ``.venv/bin/python benchmarks/plan_speed.py`` (in process, one core; no Ray, no server).
"""

from __future__ import annotations

import time

import tuner
from tuner.plan import plan_from_dict

ISSUE_PLAN = {
    "model": {"name": "Llama-3.1-70B-Instruct"},
    "workload": {"scenarios": ["D(1024,256)"], "request_rate": 20},
    "slo": {"ttft_p99_ms": 2000, "tpot_p99_ms": 50},
    "gpus": {"types": ["H100", "H200", "A100-80G", "L40S"]},
}


def main() -> None:
    spec = plan_from_dict(ISSUE_PLAN)
    started = time.perf_counter()
    result = tuner.plan(spec)
    wall = time.perf_counter() - started
    layouts = len(result.ranked) + len(result.rejected)
    best = result.best
    print(f"issue-15 plan: {wall:.2f} s wall, {result.estimates} estimates, {layouts} layouts")
    print(f"estimates per second: {result.estimates / wall:.0f}; "
          f"layouts per second: {layouts / wall:.0f}")
    if best is not None:
        print(f"cheapest meeting the SLO: {best.gpus} x {best.gpu} as {best.layout} "
              f"{best.flags} at ${best.usd_per_hour:.2f}/h, "
              f"${best.usd_per_mtok:.3f} per million output tokens")


if __name__ == "__main__":
    main()
