"""The search: GPU type x tp size x flags x replicas, cheapest replica count first."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from tuner.plan._estimate import estimate_replica, fit_problem
from tuner.plan._result import Candidate, PlanResult
from tuner.plan._spec import PlanSpec

__all__ = ["plan"]


def plan(spec: PlanSpec) -> PlanResult:
    """Finds the layouts that serve ``spec``'s load within its SLO, cheapest first.

    For each GPU type, tensor-parallel size and flag combination, a replica that does not
    start (memory, heads) is rejected with the twin's reason; otherwise replicas are added
    one at a time, each estimated under its even share of the load, until the SLO is met
    (more replicas would only cost more) or the GPU budget is spent.

    Args:
        spec: The plan.

    Returns:
        The ranked layouts that meet the SLO and the rejected ones with their reasons.
    """
    started = time.perf_counter()
    ranked: list[Candidate] = []  # every layout meeting the SLO, before _distinct
    rejected: list[Candidate] = []
    estimates = 0
    for gpu in spec.gpus.types:
        price = spec.price(gpu)
        for tp in spec.gpus.tp_sizes:
            if tp > spec.gpus.max_gpus:
                continue
            for flags in _flag_grid(spec.space):
                server_args = {"tp_size": tp, **{k: v for k, v in flags.items() if v is not None}}
                problem = fit_problem(spec, gpu, server_args)
                if problem is not None:
                    rejected.append(Candidate(gpu, tp, 1, flags, price * tp, False, problem))
                    continue
                for replicas in range(1, spec.gpus.max_gpus // tp + 1):
                    metrics, margin, reason = estimate_replica(spec, gpu, server_args, replicas)
                    estimates += 1
                    candidate = Candidate(gpu, tp, replicas, flags, price * tp * replicas,
                                          reason is None, reason, metrics, margin)
                    (ranked if candidate.meets else rejected).append(candidate)
                    if candidate.meets:
                        break
    ranked.sort(key=lambda c: (c.usd_per_hour, -(c.margin or 0.0), c.gpu, c.tp))
    return PlanResult(spec, _distinct(ranked), rejected, estimates,
                      time.perf_counter() - started)


def _distinct(ranked: list[Candidate]) -> list[Candidate]:
    """One of each layout whose flags change nothing the twin predicts (e.g. a chunk size
    larger than every prompt): the one setting the fewest flags, so the table lists choices,
    not spellings of one."""
    kept: dict[tuple[Any, ...], Candidate] = {}
    for candidate in ranked:
        key = (candidate.gpu, candidate.tp, candidate.replicas,
               tuple(sorted((k, round(v, 6)) for k, v in candidate.metrics.items())))
        seen = kept.get(key)
        if seen is None or _set_flags(candidate) < _set_flags(seen):
            kept[key] = candidate
    chosen = {id(c) for c in kept.values()}
    return [c for c in ranked if id(c) in chosen]


def _set_flags(candidate: Candidate) -> int:
    return sum(v is not None for v in candidate.flags.values())


def _flag_grid(space: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    names = sorted(space)
    for values in itertools.product(*(space[name] for name in names)):
        yield dict(zip(names, values, strict=True))
