"""Orchestration overhead of the tuner: per trial, and to start a study.

Per-trial overhead is a trial's wall time minus the time its server took to start and the time
genai-bench spent measuring: what Ray Tune, the trial actor, the health probes, the store and
teardown add. Study start-up is the time from ``run_study`` to the first trial's deploy, with
Ray already running (as in the service) and from a cold process (as in the CLI, Ray included).

Runs the quickstart's model on the twin with tiny levels. Usage:
    .venv/bin/python benchmarks/overhead.py [--trials 6]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner import init_ray, open_store, run_study  # noqa: E402
from tuner.spec import spec_from_dict  # noqa: E402


def spec(trials: int) -> object:
    levels = [4, 8, 16, 32, 64, 128, 256, 512][:trials]
    return spec_from_dict({
        "name": "overhead",
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "twin", "gpus": 2, "time_scale": 8},
        "space": {"max_running_requests": levels},
        "workload": {"scenarios": ["D(64,32)"], "concurrency": [2],
                     "max_requests_per_level": 6},
        "objective": {"slo": {"tpot_p99_ms": 1000}},
        # The search itself only: no pre-screen, no confirmation runs.
        "search": {"algorithm": "grid", "prescreen": None, "confirm": {"top_k": 0}},
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    args = parser.parse_args()
    study_spec = spec(args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        init_ray(gpus=2)
        ray_s = time.perf_counter() - started
        began = time.time()
        result = run_study(study_spec, store=open_store(Path(tmp) / "s.db"))
        total_s = time.time() - began
        first = min(t.started_at for t in result.trials if t.started_at)
        overheads = [(t.ended_at - t.started_at) - t.timings.get("deploy_s", 0.0)
                     - t.timings.get("bench_s", 0.0) for t in result.trials]
        cold = _cold_start(Path(tmp))
    print(f"trials: {len(result.trials)} ({result.study.state.value}), study wall {total_s:.1f} s")
    print(f"ray.init: {ray_s:.1f} s")
    print(f"study start-up, Ray running: {first - began:.2f} s (run_study to first deploy)")
    print(f"study start-up, cold CLI process incl. imports and ray.init: {cold:.1f} s")
    print(f"per-trial overhead: median {statistics.median(overheads):.2f} s, "
          f"max {max(overheads):.2f} s (target < 1 s)")
    busy = sum(t.ended_at - t.started_at for t in result.trials)
    print(f"scheduling gaps: study wall {total_s:.1f} s vs {busy / 2:.1f} s of trial time on "
          f"2 GPUs: {(total_s - busy / 2) / len(result.trials):.2f} s per trial")
    for t in result.trials:
        print(f"  trial {t.number}: wall {t.ended_at - t.started_at:.2f} s, deploy "
              f"{t.timings.get('deploy_s', 0):.2f} s, bench {t.timings.get('bench_s', 0):.2f} s")


def _cold_start(tmp: Path) -> float:
    """Seconds from launching ``autotuner run`` to its first trial's deploy."""
    spec_path = tmp / "cold.yaml"
    spec_path.write_text(
        "name: cold\nmodel: {name: Llama-3.1-8B-Instruct}\n"
        "backend: {kind: twin, gpus: 1, time_scale: 8}\n"
        "space: {max_running_requests: [8]}\n"
        "workload: {scenarios: ['D(64,32)'], concurrency: [2], max_requests_per_level: 4}\n"
        "search: {algorithm: grid, prescreen: null, confirm: {top_k: 0}}\n")
    store = tmp / "cold.db"
    began = time.time()
    subprocess.run([sys.executable, "-m", "tuner.cli", "--store", str(store), "run",
                    str(spec_path)], check=True, capture_output=True, cwd=ROOT)
    opened = open_store(store)
    trial = opened.list_trials(opened.list_studies()[0].study_id)[0]
    return (trial.started_at or began) - began


if __name__ == "__main__":
    main()
