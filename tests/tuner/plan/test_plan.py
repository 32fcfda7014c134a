"""The capacity planner: spec errors, the issue's 70B plan, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tuner
import twin
from tests.changes import changed
from tuner.cli import main
from tuner.exceptions import SpecError
from tuner.plan import PlanResult, load_plan, plan_from_dict

ISSUE_PLAN: dict[str, Any] = {
    "model": {"name": "Llama-3.1-70B-Instruct"},
    "workload": {"scenarios": ["D(1024,256)"], "request_rate": 20},
    "slo": {"ttft_p99_ms": 2000, "tpot_p99_ms": 50},
    "gpus": {"types": ["H100", "H200", "A100-80G", "L40S"]},
}


def _with(**changes: Any) -> dict[str, Any]:
    return changed(ISSUE_PLAN, **changes)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"workload__users": 10}, "workload", "exactly one target load"),
        ({"workload__scenarios": ["D(1024)"]}, "workload.scenarios", "not a genai-bench"),
        ({"gpus__types": ["H1000"]}, "gpus.types", "H100"),
        ({"gpus__tp_sizes": [3]}, "gpus.tp_sizes", "1, 2, 4 or 8"),
        ({"space": {"max_runing_requests": [64]}}, "space.max_runing_requests", "not a flag"),
        ({"space": {"tp_size": [1, 2]}}, "space.tp_size", "gpus.tp_sizes"),
        ({"fixed": {"mem_fraction_static": "lots"}}, "fixed.mem_fraction_static", "lots"),
        ({"prices": {"H100": -1}}, "prices", "above 0"),
        ({"prices": {"B200": 5.0}}, "prices.B200", "not one of gpus.types"),
        ({"gpus__types": ["B200"]}, "prices.B200", "no default price"),
        ({"model__name": "Llama-9-1T"}, "model.name", "catalog"),
        ({"slo": {"error_rate": 0.1}}, "slo", "latency bound"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_field_is_named(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        plan_from_dict(_with(**changes))
    message = str(info.value)
    assert field in message and words in message, message
    assert any(path.startswith(field) or field.startswith(path)
               for path, _ in info.value.errors), info.value.errors


@pytest.fixture(scope="module")
def issue_plan() -> PlanResult:
    return tuner.plan(plan_from_dict(ISSUE_PLAN))


def test_issue_plan_names_a_cheapest_layout_meeting_the_slo(issue_plan: PlanResult) -> None:
    best = issue_plan.best
    assert best is not None and best.meets
    assert best.usd_per_hour == min(c.usd_per_hour for c in issue_plan.ranked)
    assert best.usd_per_hour == pytest.approx(issue_plan.spec.price(best.gpu) * best.gpus)
    # Its own estimate, made here without the planner, meets the SLO.
    agg = twin.estimate(
        {"model_path": "Llama-3.1-70B-Instruct", **best.server_args}, gpu=best.gpu,
        scenario="D(1024,256)", request_rate=20 / best.replicas, max_requests=300,
    )["aggregated_metrics"]
    assert agg["stats"]["ttft"]["p99"] * 1000 <= 2000
    assert agg["stats"]["tpot"]["p99"] * 1000 <= 50
    assert agg["error_rate"] == 0


def test_every_cheaper_layout_was_rejected_with_a_reason(issue_plan: PlanResult) -> None:
    best = issue_plan.best
    assert best is not None
    spec = issue_plan.spec
    rejected = {(c.gpu, c.tp, c.replicas, json.dumps(c.flags, sort_keys=True)): c
                for c in issue_plan.rejected}
    assert all(c.reason for c in issue_plan.rejected)
    assert not [c for c in issue_plan.ranked if c.usd_per_hour < best.usd_per_hour]
    checked = 0
    for gpu in spec.gpus.types:
        for tp in spec.gpus.tp_sizes:
            for mrr in spec.space["max_running_requests"]:
                for cps in spec.space["chunked_prefill_size"]:
                    flags = json.dumps({"chunked_prefill_size": cps,
                                        "max_running_requests": mrr}, sort_keys=True)
                    if (gpu, tp, 1, flags) in rejected and \
                            rejected[(gpu, tp, 1, flags)].reason.startswith("does not fit"):
                        checked += 1
                        continue
                    for replicas in range(1, spec.gpus.max_gpus // tp + 1):
                        if spec.price(gpu) * tp * replicas >= best.usd_per_hour:
                            break
                        assert (gpu, tp, replicas, flags) in rejected, (gpu, tp, replicas, flags)
                        checked += 1
    assert checked > 50
    kinds = issue_plan.why_rejected()
    assert "does not fit" in kinds and any(k.startswith("misses ") for k in kinds)


def test_users_target_splits_concurrency() -> None:
    data = _with(workload={"scenarios": ["D(512,128)"], "users": 64, "max_requests": 64})
    data.update(model={"name": "Llama-3.1-8B-Instruct"}, slo={"ttft_p99_ms": 3000},
                gpus={"types": ["H100"], "tp_sizes": [1], "max_gpus": 2},
                space={"max_running_requests": [None]})
    result = tuner.plan(plan_from_dict(data))
    assert result.best is not None
    assert result.best.metrics["goodput"] > 0
    assert result.to_dict()["prices"]["H100"]["source"].startswith("https://")


def test_cli_plan_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(_with(gpus__types=["H100", "L40S"], prices={"L40S": 1.0})))
    out_csv = tmp_path / "plan.csv"
    assert main(["plan", str(path), "--json", "--csv", str(out_csv)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best"]["meets_slo"] and data["best"]["gpu"] in ("H100", "L40S")
    assert data["prices"]["L40S"]["source"] == "plan"
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("gpu,gpus,tp_size") and len(lines) == 1 + len(data["ranked"]) + \
        len(data["rejected"])
    assert main(["plan", str(path), "--top", "2"]) == 0
    text = capsys.readouterr().out
    assert "cheapest first" in text and "why the other layouts lost" in text
    assert "does not fit" in text and "cheapest:" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(_with(workload__request_rate=-3)))
    assert main(["plan", str(bad)]) == 2
    assert "workload.request_rate" in capsys.readouterr().err


def test_every_example_plan_loads() -> None:
    plans = sorted((Path(__file__).parents[3] / "examples").glob("plan-*.yaml"))
    assert plans
    for path in plans:
        assert load_plan(path).gpus.types
    with pytest.raises(SpecError, match="nope.yaml"):
        load_plan(path.with_name("nope.yaml"))
