"""Confirming the winner: the top configurations re-run on fresh deployments, judged by noise.

A search picks its best trial from one measurement each, and the top few are often within
run-to-run noise of each other. Re-running them gives a mean and a confidence interval per
metric; a winner is named only when it beats the runner-up beyond the noise (a Welch t-test
at 95 %, and by more than ``confirm.tie_within``). Otherwise the tied configurations are
reported and the one with the fewest GPUs is picked, since it serves the same for less, as
long as its mean lies within the best one's interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tuner import objective
from tuner.spec import StudySpec
from tuner.store import TrialRecord, TrialState

__all__ = ["Candidate", "Estimate", "Verdict", "judge", "top_trials"]

# Two-sided 95 % quantiles of Student's t by degrees of freedom (1..30); the normal's beyond.
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def _t95(df: float) -> float:
    return _T95[max(1, int(df)) - 1] if df < len(_T95) + 1 else 1.96


@dataclass(frozen=True)
class Estimate:
    """A metric over repeated runs: mean and 95 % confidence interval (``low``, ``high``).

    Every metric confirmed is a throughput, a latency or a rate: never negative. The interval
    is Student's t on the logarithms when every value is positive (``method`` ``log-t``: it
    is multiplicative, so it cannot reach zero), else Student's t on the values clipped at
    zero (``t>=0``). ``stdev`` is the values' own, which the Welch test uses.
    """

    mean: float
    low: float
    high: float
    n: int
    stdev: float
    method: str = "log-t"

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        """The estimate from a sample (a single value has no spread to estimate: CI = mean)."""
        n, mean = len(values), statistics.fmean(values)
        stdev = statistics.stdev(values) if n > 1 else 0.0
        if n < 2:
            return cls(mean=mean, low=mean, high=mean, n=n, stdev=stdev)
        t = _t95(n - 1)
        if all(v > 0 for v in values):
            logs = [math.log(v) for v in values]
            centre, half = statistics.fmean(logs), t * statistics.stdev(logs) / math.sqrt(n)
            return cls(mean=mean, low=math.exp(centre - half), high=math.exp(centre + half),
                       n=n, stdev=stdev)
        half = t * stdev / math.sqrt(n)
        return cls(mean=mean, low=max(0.0, mean - half), high=mean + half, n=n, stdev=stdev,
                   method="t>=0")


@dataclass(frozen=True)
class Candidate:
    """One confirmed configuration.

    Attributes:
        trial_id: the search trial whose config was re-run.
        params: that config.
        gpus: GPUs it occupies.
        metrics: ``score`` and the scoring level's metrics, over the search run and the
            confirmation runs.
        failed_runs: confirmation runs that did not score (failed, or missed the SLO).
    """

    trial_id: str
    number: int
    params: dict[str, Any]
    gpus: int
    metrics: dict[str, Estimate]
    failed_runs: int


@dataclass(frozen=True)
class Verdict:
    """The confirmation's outcome.

    Attributes:
        candidates: best mean score first; candidates with failed runs last.
        winner: the trial id picked.
        tie: whether the winner was not better than another candidate beyond the noise.
        tied: the trial ids within noise of the best mean (the winner among them).
        reason: one sentence saying why.
    """

    candidates: list[Candidate]
    winner: str | None
    tie: bool
    tied: list[str]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for events, the CLI and the API."""
        return asdict(self)


def top_trials(trials: Sequence[TrialRecord], spec: StudySpec) -> list[TrialRecord]:
    """The search trials to confirm: the best ``confirm.top_k`` that ran their whole ladder."""
    mode = objective.direction(spec.objective)
    scored = [
        t
        for t in trials
        if t.confirms is None and t.score is not None and t.state == TrialState.COMPLETED
    ]
    scored.sort(key=lambda t: (t.score or 0.0) * (1 if mode == "min" else -1))
    return scored[: spec.search.confirm.top_k]


def _run_metrics(trial: TrialRecord, spec: StudySpec) -> dict[str, float] | None:
    if trial.score is None or trial.state == TrialState.FAILED:
        return None
    out = {"score": float(trial.score)}
    level = objective.best_level(trial.levels, spec.objective)
    if level is None:
        return out
    names = [objective.metric_name(spec.objective), *spec.objective.slo.bounds()]
    if spec.objective.pareto:
        names.append(spec.objective.pareto)
    out.update({name: float(getattr(level, name)) for name in names})
    return out


def judge(trials: Sequence[TrialRecord], spec: StudySpec) -> Verdict | None:
    """Judge the confirmation runs among ``trials`` (search trials and confirmation runs).

    Returns:
        The verdict, or None when no confirmation run exists.
    """
    runs: dict[str, list[TrialRecord]] = {}
    for trial in trials:
        if trial.confirms is not None and trial.state.is_finished():
            runs.setdefault(trial.confirms, []).append(trial)
    originals = {t.trial_id: t for t in trials if t.trial_id in runs}
    if not originals:
        return None
    sign = 1.0 if objective.direction(spec.objective) == "max" else -1.0
    candidates = []
    for trial_id, original in originals.items():
        samples = [_run_metrics(t, spec) for t in [original, *runs[trial_id]]]
        good = [s for s in samples if s is not None]
        names = set.intersection(*(set(s) for s in good)) if good else set()
        candidates.append(
            Candidate(
                trial_id=trial_id,
                number=original.number,
                params=original.params,
                gpus=original.gpus,
                failed_runs=len(samples) - len(good),
                metrics={n: Estimate.of([s[n] for s in good]) for n in sorted(names)},
            )
        )
    candidates.sort(
        key=lambda c: (
            c.failed_runs > 0,
            -sign * c.metrics["score"].mean if "score" in c.metrics else math.inf,
        )
    )
    clean = [c for c in candidates if c.failed_runs == 0 and "score" in c.metrics]
    if not clean:
        return Verdict(
            candidates,
            None,
            False,
            [],
            "every confirmed configuration failed or missed the SLO on a re-run",
        )
    top = clean[0]
    tied = [c for c in clean if c is top or not _beats(top, c, sign, spec)]
    # A cheaper config replaces the top only when it typically does as well: its mean lies
    # within the top's interval. One that is merely too erratic to tell apart (a run that
    # misses the SLO at its best level) does not.
    score = top.metrics["score"]
    floor = (
        min(score.low, score.mean * (1 - spec.search.confirm.tie_within))
        if sign > 0
        else max(score.high, score.mean * (1 + spec.search.confirm.tie_within))
    )
    eligible = [c for c in tied if sign * c.metrics["score"].mean >= sign * floor]
    winner = min(eligible, key=lambda c: (c.gpus, -sign * c.metrics["score"].mean))
    return Verdict(
        candidates,
        winner.trial_id,
        len(tied) > 1,
        [c.trial_id for c in tied],
        _reason(top, tied, winner, clean, sign),
    )


def _beats(a: Candidate, b: Candidate, sign: float, spec: StudySpec) -> bool:
    """Whether ``a``'s score is better than ``b``'s beyond noise and the tie margin."""
    sa, sb = a.metrics["score"], b.metrics["score"]
    diff = sign * (sa.mean - sb.mean)
    if diff <= spec.search.confirm.tie_within * abs(sb.mean):
        return False
    va, vb = sa.stdev**2 / sa.n, sb.stdev**2 / sb.n
    if va + vb == 0:
        return True
    # Welch-Satterthwaite degrees of freedom (samples of one carry no variance term).
    df = (va + vb) ** 2 / sum(v**2 / (s.n - 1) for v, s in ((va, sa), (vb, sb)) if s.n > 1)
    return diff - _t95(df) * math.sqrt(va + vb) > 0


def _reason(
    top: Candidate, tied: list[Candidate], winner: Candidate, clean: list[Candidate], sign: float
) -> str:
    if len(tied) == 1:
        if len(clean) == 1:
            return f"trial {top.number} is the only configuration that scored on every re-run"
        runner = clean[1]
        gain = sign * (top.metrics["score"].mean / runner.metrics["score"].mean - 1)
        return (
            f"trial {top.number} beats the runner-up (trial {runner.number}) by {gain:.1%}, "
            "beyond the run-to-run noise"
        )
    names = ", ".join(f"trial {c.number}" for c in tied)
    if winner is top and any(c.gpus < top.gpus for c in tied):
        return (
            f"{names} are within noise of each other: a tie; kept trial {top.number}, "
            "since the cheaper ones' means fall outside its 95 % interval"
        )
    if winner is top:
        return (
            f"{names} are within noise of each other: a tie; trial {top.number} has the "
            "best mean and no more GPUs than the others"
        )
    return (
        f"{names} are within noise of each other: a tie; picked trial {winner.number}, "
        f"which uses {winner.gpus} GPU(s) where trial {top.number} (best mean) uses "
        f"{top.gpus}"
    )
