"""Repeatability of the quickstart: does the same study, run again, name the same winner?

Runs ``examples/quickstart.yaml`` several times (each in a fresh store, one Ray instance) and
prints: the winner of each run and whether the runs agree (the same winner, or ties that all
include it); each configuration's score over every run that measured it (search trials and
confirmation re-runs), with its spread; and, per configuration and level, TTFT and TPOT as
genai-bench measured them, as the server counted them (its /metrics), and as the twin's
estimator predicts them. Usage:
    .venv/bin/python benchmarks/repeatability.py [--runs 3] [--spec examples/quickstart.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import twin  # noqa: E402
from tuner import StudyResult, init_ray, open_store, run_study  # noqa: E402
from tuner.bench.metrics import LevelMetrics  # noqa: E402
from tuner.spec import StudySpec, TwinBackendSpec, load_spec  # noqa: E402


def _key(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _winner(result: StudyResult) -> tuple[str | None, set[str]]:
    """The winner's config and the configs it tied with (itself included)."""
    by_id = {t.trial_id: t for t in result.trials}
    verdict = result.confirmation
    if verdict is not None and verdict.winner is not None:
        return _key(by_id[verdict.winner].params), {_key(by_id[i].params) for i in verdict.tied}
    best = result.best
    return (_key(best.params), {_key(best.params)}) if best else (None, set())


def _estimate(spec: StudySpec, params: dict[str, Any], scenario: str, load: int) -> dict[str, Any]:
    backend = spec.backend
    assert isinstance(backend, TwinBackendSpec) and backend.gpus is not None
    config = {"model_path": spec.model.model_path, **spec.server_config(params)}
    return twin.estimate(config, gpu=backend.gpu, scenario=scenario, concurrency=load,
                         max_requests=spec.workload.max_requests_per_level,
                         num_gpus=backend.gpus)["aggregated_metrics"]["stats"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spec", type=Path, default=ROOT / "examples" / "quickstart.yaml")
    args = parser.parse_args()
    spec = load_spec(args.spec)
    if not isinstance(spec.backend, TwinBackendSpec) or spec.backend.gpus is None:
        parser.error("the study must run on the twin backend with backend.gpus set")
    init_ray(gpus=spec.backend.gpus)
    results, walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            began = time.time()
            results.append(run_study(spec, store=open_store(Path(tmp) / f"run{run}.db")))
            walls.append(time.time() - began)

    winners = [_winner(r) for r in results]
    print(f"{args.runs} runs of {args.spec.name}; wall per run: "
          + ", ".join(f"{w:.0f} s" for w, _ in zip(walls, results, strict=True)))
    for run, (winner, tied) in enumerate(winners, 1):
        extra = f" (tie with {', '.join(sorted(tied - {winner}))})" if len(tied) > 1 else ""
        print(f"  run {run}: winner {winner}{extra}")
    named = [w for w, _ in winners]
    agree = len(set(named)) == 1 or any(all(w in tied for _, tied in winners) for w in named)
    print(f"winner agreement: {'yes' if agree else 'no'} "
          f"({max(named.count(w) for w in named)}/{len(named)} name the same config)")

    scores: dict[str, list[float]] = defaultdict(list)
    levels: dict[tuple[str, str, int], list[LevelMetrics]] = defaultdict(list)
    params: dict[str, dict[str, Any]] = {}
    for result in results:
        for trial in [*result.trials, *result.confirmations]:
            key = _key(trial.params)
            params[key] = trial.params
            if trial.score is not None:
                scores[key].append(trial.score)
            for level in trial.levels:
                levels[(key, level.scenario, level.concurrency)].append(level)
    print("\nscore per configuration over every run (search + confirmation):")
    for key, values in sorted(scores.items(), key=lambda kv: -statistics.fmean(kv[1])):
        spread = (max(values) - min(values)) / statistics.fmean(values)
        print(f"  {key:28} n={len(values)} mean {statistics.fmean(values):7.1f} "
              f"min {min(values):7.1f} max {max(values):7.1f} spread {spread:6.1%}")

    print("\nms, mean over runs: c = genai-bench, s = server /metrics, e = twin estimator;"
          " flagged = levels client_bound or host_overloaded")
    print(f"  {'config':28} {'level':>18} {'TTFT mean c|s|e':>18} {'TTFT p99 c|e':>13} "
          f"{'TPOT mean c|s|e':>17} flagged")
    for (key, scenario, load), measured in sorted(levels.items()):
        est = _estimate(spec, params[key], scenario, load)
        servers = [m.server for m in measured if m.server is not None]
        s_ttft = [v.ttft.mean_ms for v in servers if v.ttft and v.ttft.mean_ms]
        s_itl = [v.itl.mean_ms for v in servers if v.itl and v.itl.mean_ms]
        flagged = sum(1 for m in measured if m.flags())
        print(f"  {key:28} {f'{scenario} c={load}':>18} "
              f"{_mean([m.ttft_mean_ms for m in measured])}|{_mean(s_ttft)}|"
              f"{_mean([est['ttft']['mean'] * 1000])} "
              f"{_mean([m.ttft_p99_ms for m in measured])}|{_mean([est['ttft']['p99'] * 1000])}"
              f"  {_mean([m.tpot_mean_ms for m in measured], 1)}|{_mean(s_itl, 1)}|"
              f"{_mean([est['tpot']['mean'] * 1000], 1)}  {flagged}/{len(measured)}")


def _mean(values: list[float], digits: int = 0) -> str:
    return f"{statistics.fmean(values):6.{digits}f}" if values else "     -"


if __name__ == "__main__":
    main()
