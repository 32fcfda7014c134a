"""Search efficiency: trials and GPU hours each search method needs to find a near-best config.

For three studies (model, GPU, workload and SLOs differ; each space has 190-390 grid points of
real SGLang flags) every method searches against a simulated cluster, over several seeds:

- grid: the spec's grid, in its stable order;
- random: uniform draws (Optuna's RandomSampler), never repeating a config;
- bayes: TPE with the SLO as a learned constraint and failures told as infeasible;
- bayes+prescreen: the same, seeded by the twin pre-screen (``search.prescreen``);
- bayes+prescreen+es (the default ``search``): plus early stopping on the concurrency ladder.

The simulated cluster is the twin's estimator with two things the pre-screen cannot know:
a systematic model error per config (each flag value shifts decode and prefill speed by a
few per cent, plus a per-config term; about 13 % in all, so the pre-screen's ranking is good
but not exact) and 2-3 % run-to-run noise per measurement, plus 3 % of configs that crash at
start-up although the twin predicts they start. The searchers, the pre-screen, the early-stop
rule, the :class:`~tuner.objective.Ladder` and the confirmation verdict are the library's own;
this script only replaces Ray Tune by a loop that runs one trial at a time.

GPU time of a trial = (deploy time + per measured level: its benchmark time + 15 s of
genai-bench set-up) x the GPUs the config occupies. Deploy time is a fixed guess per model
(weights from local disk, CUDA graphs, pod start): 150 s for 8B, 300 s for 32B, 480 s for 70B.

Printed per study: the exhaustive best goodput (per GPU, under the SLO, without run noise),
then per method, medians over seeds: trials until a fully measured trial reaches 98 % of that
best, the GPU hours spent until then, the true goodput of what the method would pick after a
budget of 20 % of the grid's trials (best measured trial), the GPU hours of that budget, the
trials stopped early and the share of ladder levels measured (trials stop climbing once the
SLO breaks, and early stopping cuts more).
For the default method, the confirmation (top 3 x 2 re-runs) after the budget: its verdict,
the true goodput of the confirmed winner and its GPU hours.

Usage:
    .venv/bin/python benchmarks/search_efficiency.py [--seeds 5] [--study NAME] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner import objective  # noqa: E402
from tuner.backends import make  # noqa: E402
from tuner.bench.metrics import LevelMetrics  # noqa: E402
from tuner.exceptions import BackendError  # noqa: E402
from tuner.search import (  # noqa: E402
    LadderRule,
    Space,
    config_key,
    judge,
    make_searcher,
    prescreen,
    top_trials,
)
from tuner.spec import StudySpec, spec_from_dict  # noqa: E402
from tuner.store import TrialRecord, TrialState  # noqa: E402
from tuner.trial import OBJECTIVE_KEY, sentinel  # noqa: E402

LEVEL_OVERHEAD_S = 15.0
BUDGET_SHARE = 0.2  # the target: 98 % of the best within 20 % of the grid's trials
TARGET = 0.98
MODEL_ERROR_PER_VALUE = 0.05  # log-normal sigma of each flag value's share of the model error
MODEL_ERROR_PER_CONFIG = 0.05
RUN_NOISE = {"throughput": 0.02, "latency": 0.03}
HIDDEN_CRASH_SHARE = 0.03

STUDIES: dict[str, dict[str, Any]] = {
    "llama8b-h100-chat": {
        "deploy_s": 150,
        "spec": {
            "model": {"name": "Llama-3.1-8B-Instruct"},
            "backend": {"kind": "estimate", "gpu": "H100", "gpus": 4},
            "space": {
                "tp_size": [1, 2],
                "dp_size": [1, 2],
                "mem_fraction_static": [0.75, 0.85, 0.93],
                "max_running_requests": [64, 128, 256, 512],
                "chunked_prefill_size": [2048, 4096, 8192],
                "cuda_graph_max_bs": [64, 256],
            },
            "constraints": ["cuda_graph_max_bs <= max_running_requests"],
            "workload": {
                "scenarios": ["D(1024,256)"],
                "concurrency": [16, 32, 64, 128, 256],
                "max_requests_per_level": 200,
            },
            "objective": {"per_gpu": True, "slo": {"ttft_p99_ms": 600, "tpot_p99_ms": 25}},
        },
    },
    "qwen32b-a100-long": {
        "deploy_s": 300,
        "spec": {
            "model": {"name": "Qwen2.5-32B-Instruct"},
            "backend": {"kind": "estimate", "gpu": "A100-80G", "gpus": 8},
            "space": {
                "tp_size": [1, 2, 4, 8],
                "mem_fraction_static": [0.8, 0.88, 0.95],
                "chunked_prefill_size": [1024, 4096, 8192, 16384],
                "max_running_requests": [16, 32, 64, 128],
                "kv_cache_dtype": ["auto", "fp8_e4m3"],
            },
            "workload": {
                "scenarios": ["D(6000,300)"],
                "concurrency": [4, 8, 16, 32, 64, 128],
                "max_requests_per_level": 200,
            },
            "objective": {"per_gpu": True, "slo": {"ttft_p99_ms": 6000, "tpot_p99_ms": 70}},
        },
    },
    "llama70b-h200-tight": {
        "deploy_s": 480,
        "spec": {
            "model": {"name": "Llama-3.1-70B-Instruct"},
            "backend": {"kind": "estimate", "gpu": "H200", "gpus": 8},
            "space": {
                "tp_size": [2, 4, 8],
                "dp_size": [1, 2, 4],
                "mem_fraction_static": [0.85, 0.92],
                "max_running_requests": [32, 64, 128, 256],
                "chunked_prefill_size": [2048, 8192],
                "schedule_conservativeness": [0.5, 1.0],
            },
            "workload": {
                "scenarios": ["N(2000,400)/(400,100)"],
                "concurrency": [8, 16, 32, 64, 128, 256],
                "max_requests_per_level": 200,
            },
            "objective": {"per_gpu": True, "slo": {"ttft_p99_ms": 2500, "tpot_p99_ms": 18}},
        },
    },
}

# name: (search.algorithm, pre-screen, early stopping)
METHODS: dict[str, tuple[str, bool, bool]] = {
    "grid": ("grid", False, False),
    "random": ("random", False, False),
    "bayes": ("bayes", False, False),
    "bayes+prescreen": ("bayes", True, False),
    "bayes+prescreen+es": ("bayes", True, True),
}
DEFAULT_METHOD = "bayes+prescreen+es"


def _unit(*parts: object) -> float:
    """A standard normal draw fixed by ``parts`` (the cluster is the same for every seed)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    u = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    return statistics.NormalDist().inv_cdf(u)


class Cluster:
    """The simulated hardware: the twin's estimate, with model error, noise and hidden crashes."""

    def __init__(self, spec: StudySpec, deploy_s: float) -> None:
        self.spec = spec
        self.deploy_s = deploy_s
        self._backend = make(spec, study_id="bench", workdir=Path(tempfile.gettempdir()))
        self._levels: dict[tuple[Any, ...], LevelMetrics] = {}
        self._starts: dict[tuple[Any, ...], str | None] = {}

    def failure(self, config: dict[str, Any]) -> str | None:
        """Why this config does not start, or None."""
        key = config_key(config)
        if key not in self._starts:
            deployment = self._backend.deploy(self.spec.server_config(config), trial_id="t")
            try:
                self._backend.wait_ready(deployment, 1.0)
                reason = (
                    "crash"
                    if _unit("crash", key)
                    > statistics.NormalDist().inv_cdf(1 - HIDDEN_CRASH_SHARE)
                    else None
                )
            except BackendError as e:
                reason = e.reason
            self._starts[key] = reason
        return self._starts[key]

    def _speed(self, config: dict[str, Any], what: str) -> float:
        error = sum(_unit(what, name, value) for name, value in sorted(config.items()))
        error = error * MODEL_ERROR_PER_VALUE + _unit(what, config_key(config)) * (
            MODEL_ERROR_PER_CONFIG
        )
        return math.exp(error)

    def measure(
        self,
        config: dict[str, Any],
        scenario: str,
        concurrency: int,
        rng: np.random.Generator | None,
    ) -> LevelMetrics:
        """One level as the cluster serves it; ``rng`` None: without run-to-run noise."""
        key = (config_key(config), scenario, concurrency)
        if key not in self._levels:
            deployment = self._backend.deploy(self.spec.server_config(config), trial_id="t")
            self._levels[key] = self._backend.measure(
                deployment, scenario=scenario, concurrency=concurrency, out_dir=Path(".")
            )
        level = self._levels[key]
        decode = self._speed(config, "decode")  # > 1: slower than the twin predicts
        prefill = self._speed(config, "prefill")
        if rng is not None:
            decode *= math.exp(rng.normal(0, RUN_NOISE["throughput"]))
            prefill *= math.exp(rng.normal(0, RUN_NOISE["latency"]))
        changes: dict[str, float] = {}
        for name, value in level.model_dump().items():
            if name.endswith("_throughput") or name == "requests_per_second":
                changes[name] = value / decode
            elif name.startswith(("tpot_", "e2e_")):
                changes[name] = value * decode
            elif name.startswith("ttft_"):
                changes[name] = value * prefill
        changes["duration_s"] = level.duration_s * decode
        return level.model_copy(update=changes)


@dataclass
class Trial:
    """One simulated trial."""

    config: dict[str, Any]
    result: dict[str, Any]
    gpu_s: float
    complete: bool  # the whole ladder measured (not failed, not stopped early)
    levels: list[LevelMetrics] = field(default_factory=list)


def run_trial(
    cluster: Cluster,
    config: dict[str, Any],
    trial_id: str,
    rule: LadderRule | None,
    rng: np.random.Generator,
) -> Trial:
    """What TrialRunner does over the steps of one trial, and what early stopping decides."""
    spec = cluster.spec
    gpus = spec.gpus_needed(spec.server_config(config))
    mode = objective.direction(spec.objective)
    if reason := cluster.failure(config):
        return Trial(
            config,
            {"failed": True, "reason": reason, OBJECTIVE_KEY: sentinel(mode)},
            cluster.deploy_s * gpus,
            False,
        )
    ladder = objective.Ladder(spec.workload, spec.objective, gpus)
    seconds = cluster.deploy_s
    result: dict[str, Any] = {}
    while rung := ladder.next_rung():
        levels = [cluster.measure(config, s, c, rng) for s, c in rung]
        ladder.record(levels)
        seconds += sum(
            min(lv.duration_s, spec.workload.max_seconds_per_level) + LEVEL_OVERHEAD_S
            for lv in levels
        )
        score = ladder.score
        result = {
            "score": score,
            OBJECTIVE_KEY: score if score is not None else sentinel(mode),
            "slo_excess": ladder.slo_excess,
            "latency": ladder.latency,
            "ladder_done": ladder.done,
        }
        if rule is not None and rule.report(
            trial_id,
            result[OBJECTIVE_KEY],
            level_value=ladder.rung_value,
            level_excess=ladder.rung_excess,
            final=ladder.done,
        ):
            return Trial(config, result, seconds * gpus, False, ladder.levels)
    return Trial(config, result, seconds * gpus, True, ladder.levels)


def study_spec(name: str, method: str, seed: int) -> StudySpec:
    algorithm, screened, early = METHODS[method]
    data = {
        "name": name,
        **STUDIES[name]["spec"],
        "search": {
            "algorithm": algorithm,
            "seed": seed,
            "early_stopping": early,
            "prescreen": {} if screened else None,
        },
    }
    return spec_from_dict(data)


@dataclass
class Run:
    """One method on one study with one seed."""

    trials_to_target: int | None
    gpu_h_to_target: float | None
    pick_at_budget: float  # true goodput of the best measured trial within the budget / best
    gpu_h_at_budget: float
    stopped_early: int
    levels_share: float  # levels measured within the budget / the trials' full ladders
    confirm: dict[str, Any] | None = None


def true_score(cluster: Cluster, config: dict[str, Any]) -> float | None:
    """The config's goodput on the cluster without run-to-run noise (None: none)."""
    if cluster.failure(config):
        return None
    spec = cluster.spec
    gpus = spec.gpus_needed(spec.server_config(config))
    ladder = objective.Ladder(spec.workload, spec.objective, gpus)
    while rung := ladder.next_rung():
        ladder.record([cluster.measure(config, s, c, None) for s, c in rung])
    return ladder.score


def run_method(
    name: str,
    method: str,
    seed: int,
    cluster: Cluster,
    best: float,
    truth: dict[Any, float | None],
    screened: Any,
    budget: int,
    limit: int,
) -> Run:
    spec = study_spec(name, method, seed)
    _, uses_prescreen, early = METHODS[method]
    capacity = spec.backend.gpus
    mode = objective.direction(spec.objective)
    searcher = make_searcher(
        spec,
        capacity=capacity,
        metric=OBJECTIVE_KEY,
        mode=mode,
        prescreen=screened if uses_prescreen else None,
    )
    rule = LadderRule(mode, spec.workload.concurrency) if early else None
    rng = np.random.default_rng(seed)
    trials: list[Trial] = []
    spent = 0.0
    reached: tuple[int, float] | None = None
    at_budget: tuple[float, float] | None = None
    while len(trials) < limit and (reached is None or len(trials) < budget):
        trial_id = str(len(trials))
        config = searcher.suggest(trial_id)
        if not isinstance(config, dict):
            break
        trial = run_trial(cluster, config, trial_id, rule, rng)
        searcher.on_trial_complete(trial_id, trial.result)
        trials.append(trial)
        spent += trial.gpu_s
        value = truth[config_key(config)]
        if reached is None and trial.complete and value is not None and value >= TARGET * best:
            reached = (len(trials), spent / 3600)
        if len(trials) == budget:
            at_budget = (_pick(trials, truth, mode) / best, spent / 3600)
    if at_budget is None:  # the space ran out before the budget
        at_budget = (_pick(trials, truth, mode) / best, spent / 3600)
    run = Run(
        trials_to_target=reached[0] if reached else None,
        gpu_h_to_target=reached[1] if reached else None,
        pick_at_budget=at_budget[0],
        gpu_h_at_budget=at_budget[1],
        stopped_early=sum(
            1 for t in trials[:budget] if not t.complete and not t.result.get("failed")
        ),
        levels_share=sum(len(t.levels) for t in trials[:budget])
        / (len(trials[:budget]) * len(spec.workload.concurrency) * len(spec.workload.scenarios)),
    )
    if method == DEFAULT_METHOD:
        run.confirm = confirm(cluster, spec, trials[:budget], truth, best, rng)
    return run


def _pick(trials: list[Trial], truth: dict[Any, float | None], mode: str) -> float:
    """The true goodput of the trial a study would name best: the best measured score."""
    scored = [t for t in trials if t.complete and t.result.get("score") is not None]
    if not scored:
        return 0.0
    sign = 1 if mode == "max" else -1
    pick = max(scored, key=lambda t: sign * t.result["score"])
    return truth[config_key(pick.config)] or 0.0


def confirm(
    cluster: Cluster,
    spec: StudySpec,
    trials: list[Trial],
    truth: dict[Any, float | None],
    best: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The confirmation step after the search: top-k re-runs, judged by the library."""
    records = [_record(spec, i + 1, t) for i, t in enumerate(trials)]
    top = top_trials(records, spec)
    runs = []
    gpu_s = 0.0
    for original in top:
        for _ in range(spec.search.confirm.repeats):
            number = len(records) + len(runs) + 1
            trial = run_trial(cluster, original.params, f"t{number}", None, rng)
            gpu_s += trial.gpu_s
            runs.append(_record(spec, number, trial, original.trial_id))
    verdict = judge([*records, *runs], spec)
    assert verdict is not None and verdict.winner is not None
    winner = next(r for r in records if r.trial_id == verdict.winner)
    return {
        "tie": verdict.tie,
        "winner_vs_best": (truth[config_key(winner.params)] or 0) / best,
        "gpu_h": gpu_s / 3600,
    }


def _record(
    spec: StudySpec, number: int, trial: Trial, confirms: str | None = None
) -> TrialRecord:
    state = (
        TrialState.FAILED
        if trial.result.get("failed")
        else TrialState.COMPLETED
        if trial.complete
        else TrialState.STOPPED
    )
    return TrialRecord(
        study_id="bench",
        trial_id=f"t{number}",
        number=number,
        params=trial.config,
        state=state,
        confirms=confirms,
        gpus=spec.gpus_needed(spec.server_config(trial.config)),
        score=trial.result.get("score"),
        levels=[lv.model_dump() for lv in trial.levels],
    )


def bench_study(name: str, seeds: int) -> dict[str, Any]:
    started = time.monotonic()
    base = study_spec(name, "grid", 0)
    cluster = Cluster(base, STUDIES[name]["deploy_s"])
    points = list(Space(base, base.backend.gpus).points())
    truth = {config_key(p): true_score(cluster, p) for p in points}
    mode = objective.direction(base.objective)
    sign = 1 if mode == "max" else -1
    best = max((v for v in truth.values() if v is not None), key=lambda v: sign * v)
    failing = sum(1 for p in points if cluster.failure(p))
    infeasible = sum(1 for v in truth.values() if v is None)
    screened = prescreen(study_spec(name, DEFAULT_METHOD, 0), base.backend.gpus)
    budget = math.ceil(BUDGET_SHARE * len(points))
    limit = math.ceil(0.5 * len(points))
    out: dict[str, Any] = {
        "grid_points": len(points),
        "failing": failing,
        "no_score": infeasible,
        "best": best,
        "budget": budget,
        "within_target": sum(1 for v in truth.values() if v is not None and v >= TARGET * best),
        "prescreen_s": screened.seconds,
        "prescreen_dropped": len(screened.dropped),
        "methods": {},
    }
    for method in METHODS:
        runs = [
            run_method(
                name,
                method,
                seed,
                cluster,
                best,
                truth,
                screened,
                budget,
                len(points) if method == "grid" else limit,
            )
            for seed in (range(1) if method == "grid" else range(seeds))
        ]
        out["methods"][method] = _summarise(runs, budget)
    out["seconds"] = time.monotonic() - started
    return out


def _median(values: list[float | None]) -> float | None:
    """Median where None (never reached) ranks above any number, so it can be the median."""
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    return None if None in middle else statistics.fmean(middle)  # type: ignore[arg-type]


def _summarise(runs: list[Run], budget: int) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "runs": len(runs),
        "trials_to_target": _median([r.trials_to_target for r in runs]),
        "reached_in_budget": sum(
            1 for r in runs if r.trials_to_target is not None and r.trials_to_target <= budget
        ),
        "gpu_h_to_target": _median([r.gpu_h_to_target for r in runs]),
        "pick_at_budget": statistics.median(r.pick_at_budget for r in runs),
        "gpu_h_at_budget": statistics.median(r.gpu_h_at_budget for r in runs),
        "stopped_early": statistics.median(r.stopped_early for r in runs),
        "levels_share": statistics.median(r.levels_share for r in runs),
    }
    confirms = [r.confirm for r in runs if r.confirm]
    if confirms:
        summary["confirm"] = {
            "ties": sum(1 for c in confirms if c["tie"]),
            "winner_vs_best": statistics.median(c["winner_vs_best"] for c in confirms),
            "gpu_h": statistics.median(c["gpu_h"] for c in confirms),
        }
    return summary


def _fmt(value: float | None, pattern: str) -> str:
    return "never" if value is None else pattern.format(value)


def report(results: dict[str, dict[str, Any]], seeds: int) -> str:
    lines = [
        f"seeds: {seeds} (grid: its one stable order); budget = 20 % of the grid's trials",
        "",
    ]
    for name, r in results.items():
        lines.append(
            f"## {name}: {r['grid_points']} grid points, {r['failing']} fail to start, "
            f"{r['no_score'] - r['failing']} never meet the SLO; exhaustive best "
            f"{r['best']:.1f} tok/s/GPU, {r['within_target']} points within 98 %; "
            f"budget {r['budget']} trials; pre-screen {r['prescreen_s']:.1f} s CPU, "
            f"dropped {r['prescreen_dropped']}"
        )
        lines.append("")
        lines.append(
            "| method | trials to 98 % (median) | % of grid | reached within budget "
            "| GPU-h to 98 % | pick after budget (% of best) | GPU-h for budget "
            "| early-stopped | levels run |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for method, m in r["methods"].items():
            share = (
                None
                if m["trials_to_target"] is None
                else 100 * m["trials_to_target"] / r["grid_points"]
            )
            lines.append(
                f"| {method} | {_fmt(m['trials_to_target'], '{:.0f}')} "
                f"| {_fmt(share, '{:.1f} %')} | {m['reached_in_budget']}/{m['runs']} "
                f"| {_fmt(m['gpu_h_to_target'], '{:.1f}')} "
                f"| {100 * m['pick_at_budget']:.1f} % | {m['gpu_h_at_budget']:.1f} "
                f"| {m['stopped_early']:.0f} | {100 * m['levels_share']:.0f} % |"
            )
        c = r["methods"][DEFAULT_METHOD].get("confirm")
        if c:
            lines.append("")
            lines.append(
                f"confirmation of {DEFAULT_METHOD} (top 3 x 2): ties in {c['ties']}/"
                f"{r['methods'][DEFAULT_METHOD]['runs']} seeds, confirmed winner at "
                f"{100 * c['winner_vs_best']:.1f} % of best (median), +{c['gpu_h']:.1f} GPU-h"
            )
        lines.append(f"({r['seconds']:.0f} s)")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--study", choices=list(STUDIES), action="append")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    results = {}
    for name in args.study or STUDIES:
        results[name] = bench_study(name, args.seeds)
        print(report({name: results[name]}, args.seeds), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
