"""How long an ``estimate``-backend study of a 600-point grid takes, in the driver's own
process (the default), and what the same trials cost through Ray Tune (one actor each).

Run from the repository root: ``python benchmarks/estimate_grid.py [--tune-sample N]``.

The grid: Llama-3.1-8B-Instruct on 8 simulated H100s, tp 1-8 x max_running_requests x chunked
prefill x schedule policy x mem_fraction_static (600 points), D(1024,256) at 8, 32 and 128
users, the top two confirmed. ``--tune-sample N`` also runs the first N points through Ray
Tune and extrapolates its time to 600 (the whole grid that way takes about half an hour).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script

from tuner import open_store, run_study  # noqa: E402
from tuner.backends._estimate import EstimateBackend  # noqa: E402
from tuner.spec import spec_from_dict  # noqa: E402

SPACE = {
    "tp_size": [1, 2, 4, 8],
    "max_running_requests": [16, 32, 64, 128, 256],
    "chunked_prefill_size": [1024, 2048, 4096, 8192, -1],
    "schedule_policy": ["lpm", "fcfs"],
    "mem_fraction_static": [0.8, 0.85, 0.9],
}


def grid_spec(name: str, max_trials: int | None = None) -> Any:
    """The benchmark's study; ``max_trials`` cuts the grid to its first points."""
    return spec_from_dict(
        {
            "name": name,
            "model": {"name": "Llama-3.1-8B-Instruct"},
            "backend": {"kind": "estimate", "gpu": "H100", "gpus": 8},
            "space": SPACE,
            "workload": {
                "scenarios": ["D(1024,256)"],
                "concurrency": [8, 32, 128],
                "max_requests_per_level": 200,
            },
            "objective": {"metric": "goodput", "slo": {"ttft_p99_ms": 2000, "tpot_p99_ms": 50}},
            "search": {
                "algorithm": "grid" if max_trials is None else "random",
                "max_trials": max_trials,
                "prescreen": None,
                "confirm": {"top_k": 2 if max_trials is None else 0},
            },
        }
    )


def timed_study(spec: Any, store_path: pathlib.Path) -> tuple[float, int]:
    """Wall seconds of ``run_study`` (Ray already up) and the trials it recorded."""
    started = time.monotonic()
    result = run_study(spec, store=open_store(store_path))
    return time.monotonic() - started, len(result.trials) + len(result.confirmations)


def main() -> int:
    """Prints the in-process grid time and, with ``--tune-sample``, the Tune comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune-sample", type=int, default=0, help="points to run through Tune")
    args = parser.parse_args()
    from tuner import init_ray

    init_ray(gpus=8)
    with tempfile.TemporaryDirectory() as tmp:
        store = pathlib.Path(tmp) / "grid.db"
        seconds, trials = timed_study(grid_spec("grid600"), store)
        print(f"in process: {trials} trials in {seconds:.1f} s ({trials / seconds:.0f} trials/s)")
        if args.tune_sample:
            EstimateBackend.IN_PROCESS = False  # type: ignore[misc]  # the old way, for scale
            spent, done = timed_study(grid_spec("tune", args.tune_sample), store)
            print(
                f"through Ray Tune: {done} trials in {spent:.1f} s ({spent / done:.2f} s each; "
                f"600 would take about {600 * spent / done / 60:.0f} min)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
