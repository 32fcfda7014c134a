"""The twin pre-screen: predictions scored like trials, failures dropped, best ones seeded."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.exceptions import NotSupportedError
from tuner.search import prescreen
from tuner.spec import spec_from_dict


def spec(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "name": "s",
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"kind": "twin", "gpu": "H100", "gpus": 2},
        "space": {
            "tp_size": [1, 2],
            "mem_fraction_static": [0.1, 0.85],
            "max_running_requests": [4, 64],
        },
        "workload": {
            "scenarios": ["D(256,64)"],
            "concurrency": [4, 32],
            "max_requests_per_level": 20,
        },
        "objective": {"per_gpu": True, "slo": {"tpot_p99_ms": 30}},
        "search": {"prescreen": {"top_k": 2}},
    }
    data.update(changes)
    return spec_from_dict(data)


def test_failures_are_dropped_and_the_best_predicted_are_seeds() -> None:
    screened = prescreen(spec(), capacity=2)
    assert len(screened.predictions) == 8
    assert screened.reasons == {"oom": 4}
    assert all(c["mem_fraction_static"] == 0.1 for c in screened.dropped)
    scored = [p for p in screened.predictions if p.score is not None]
    assert screened.seeds == [p.config for p in scored[:2]]
    assert scored[0].score >= scored[-1].score and scored[0].excess <= 0
    summary = screened.summary()
    assert summary["estimated"] == 8 and summary["dropped"] == 4
    assert summary["seeds"][0]["predicted_score"] == scored[0].score


def test_a_wide_slo_miss_is_dropped_a_narrow_one_kept() -> None:
    tight = spec(objective={"slo": {"tpot_p99_ms": 1}}, space={"max_running_requests": [4, 64]})
    assert prescreen(tight, capacity=2).reasons == {"slo": 2}
    lenient = tight.model_copy(
        update={
            "search": tight.search.model_copy(
                update={"prescreen": tight.search.prescreen.model_copy(update={"margin": 1000.0})}
            )
        }
    )
    assert prescreen(lenient, capacity=2).dropped == []


def test_without_a_gpu_type_or_a_known_model_there_is_no_prescreen() -> None:
    ome = spec(backend={"kind": "ome", "base_model": "llama", "runtime": "srt", "gpus": 2})
    with pytest.raises(NotSupportedError, match="search.prescreen.gpu"):
        prescreen(ome, capacity=2)
    unknown = spec(model={"name": "my-own-model"})
    with pytest.raises(NotSupportedError, match="search.prescreen: the twin cannot model"):
        prescreen(unknown, capacity=2)


def test_large_continuous_spaces_are_sampled() -> None:
    wide = spec(
        space={"mem_fraction_static": {"low": 0.6, "high": 0.9}, "max_running_requests": [4, 64]},
        search={"prescreen": {"candidates": 6}},
    )
    screened = prescreen(wide, capacity=2)
    assert len(screened.predictions) == 6
    assert len({p.config["mem_fraction_static"] for p in screened.predictions}) == 6
