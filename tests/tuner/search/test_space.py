"""Space: derived flags, and which configs may run."""

from __future__ import annotations

import pytest

from tuner.exceptions import SpecError
from tuner.search import Space, make_searcher
from tuner.spec import spec_from_dict


def spec_with(derived: dict[str, str], **changes: object) -> object:
    data = {
        "name": "s",
        "model": {"name": "m"},
        "backend": {"kind": "estimate", "gpus": 4},
        "space": {"tp_size": [1, 2, 4], "max_running_requests": [16, 64, 256]},
        "search": {"algorithm": "grid", "derived": derived},
    }
    data.update(changes)
    return spec_from_dict(data)


def test_derived_flags_are_filled_in_and_count_for_the_gpus() -> None:
    spec = spec_with({"dp_size": "gpus // tp_size", "cuda_graph_max_bs": "max_running_requests"})
    points = list(Space(spec, capacity=4).points())
    assert len(points) == 9
    assert {(p["tp_size"], p["dp_size"]) for p in points} == {(1, 4), (2, 2), (4, 1)}
    assert all(p["cuda_graph_max_bs"] == p["max_running_requests"] for p in points)
    assert all(spec.gpus_needed(p) == 4 for p in points)
    searcher = make_searcher(
        spec.model_copy(update={"search": spec.search.model_copy(update={"algorithm": "bayes"})}),
        capacity=4,
        metric="objective",
        mode="max",
    )
    config = searcher.suggest("a")
    assert config["dp_size"] * config["tp_size"] == 4


def test_a_derived_value_sglang_refuses_rules_the_config_out() -> None:
    spec = spec_with({"cuda_graph_max_bs": "max_running_requests * 32"})
    assert {p["max_running_requests"] for p in Space(spec, capacity=4).points()} == {16, 64}


@pytest.mark.parametrize(
    ("derived", "fragment"),
    [
        ({"tp_size": "2"}, "search.derived.tp_size: also in space"),
        ({"cuda_graph_max_bs": "max_running"}, "names max_running"),
    ],
)
def test_derived_flags_that_do_not_fit_the_space_are_spec_errors(
    derived: dict[str, str], fragment: str
) -> None:
    with pytest.raises(SpecError, match=fragment):
        Space(spec_with(derived), capacity=4)


def test_derived_flags_are_checked_when_the_spec_loads() -> None:
    with pytest.raises(SpecError, match="search.derived"):
        spec_with({"schedule_policy": "1"})
    with pytest.raises(SpecError, match="not a valid expression"):
        spec_with({"cuda_graph_max_bs": "max_running_requests +"})
