"""``plan --verify``: the best layouts measured on the twin, predictions beside measurements,
every failure reported, never a measurement made up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tuner
from tuner.cli import main
from tuner.plan import plan_from_dict, verification_spec, verify
from tuner.store import open_store

pytestmark = pytest.mark.timeout(600)


def _plan(**verify_part: Any) -> dict[str, Any]:
    return {
        "model": {"name": "Llama-3.1-8B-Instruct"},
        "workload": {"scenarios": ["D(256,64)"], "users": 8, "max_requests": 32},
        "slo": {"ttft_p99_ms": 3000, "tpot_p99_ms": 60},
        "gpus": {"types": ["H100", "A100-80G"], "tp_sizes": [1, 2], "max_gpus": 4},
        "space": {"max_running_requests": [None, 4]},
        "verify": {"backend": {"kind": "twin", "time_scale": 20}, "max_requests_per_level": 24,
                   **verify_part},
    }


def test_the_best_layouts_are_measured_beside_their_predictions(ray_pool: int,
                                                                tmp_path: Path) -> None:
    result = tuner.plan(plan_from_dict(_plan()))
    store = open_store(tmp_path / "s.db")
    checked = verify(result, 2, store=store)
    assert [v.rank for v in checked] == [1, 2]
    for v, candidate in zip(checked, result.ranked, strict=False):
        assert v.candidate == candidate and v.measured is not None, v.reason
        study = store.get_study(v.study_id)  # type: ignore[arg-type]
        assert study.spec["backend"]["gpu"] == candidate.gpu
        assert study.spec["backend"]["gpus"] == candidate.tp
        assert study.spec["workload"]["concurrency"] == [v.users] == [8 // candidate.replicas]
        assert f"{candidate.gpu}" in study.spec["description"]
        # the twin against its own estimator, under the same closed loop
        for name in ("tpot_p50_ms", "goodput"):
            assert abs(v.error(name)) < 0.35, (name, v.predicted, v.measured)  # type: ignore
        assert v.meets_slo is (v.reason is None)
    assert json.loads(json.dumps([v.to_dict() for v in checked]))[0]["error"]["goodput"] \
        is not None


def test_a_layout_whose_server_crashes_is_reported_not_measured(ray_pool: int,
                                                                tmp_path: Path) -> None:
    data = _plan()
    data["verify"]["backend"]["faults"] = ["crash-after=2"]
    result = tuner.plan(plan_from_dict(data))
    (checked,) = verify(result, 1, store=open_store(tmp_path / "s.db"))
    assert checked.measured is None and checked.meets_slo is None
    assert checked.reason is not None and checked.reason.startswith("trial failed")
    assert checked.error("goodput") is None


def test_a_real_backend_measures_only_its_own_gpu_type(tmp_path: Path) -> None:
    data = _plan(gpu="A100-80G")
    data["verify"]["backend"] = {"kind": "local", "gpus": 1}
    data["prices"] = {"A100-80G": 100.0}  # so the best layouts are H100's
    result = tuner.plan(plan_from_dict(data))
    assert result.ranked[0].gpu == "H100"
    ran: list[str] = []
    checked = verify(result, 1, store=open_store(tmp_path / "s.db"),
                     run=lambda spec, store: ran.append(spec.name))
    assert ran == [] and checked[0].measured is None
    assert "runs A100-80G, this layout H100" in (checked[0].reason or "")
    with pytest.raises(tuner.exceptions.SpecError) as e:
        plan_from_dict({**data, "verify": {"backend": {"kind": "local"}}})
    assert [where for where, _ in e.value.errors] == ["verify.gpu"]


def test_the_verification_study_runs_one_replica_with_the_layouts_flags() -> None:
    spec = plan_from_dict(_plan())
    result = tuner.plan(spec)
    candidate = next(c for c in result.ranked if c.flags.get("max_running_requests"))
    study = verification_spec(spec, candidate, 3)
    assert study.space["tp_size"] == [candidate.tp]
    assert study.fixed == {"max_running_requests": candidate.flags["max_running_requests"]}
    assert study.search.algorithm == "grid" and study.search.confirm.top_k == 0
    assert study.objective.slo.bounds() == spec.slo.bounds()


def test_cli_verify_and_plot(ray_pool: int, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(_plan()))
    store, png = tmp_path / "s.db", tmp_path / "plan.png"
    code = main(["--store", str(store), "plan", str(path), "--verify", "1", "--plot", str(png)])
    assert code == 0
    text = capsys.readouterr().out
    assert "planned (at the target load) / predicted / measured" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (study,) = open_store(store).list_studies()
    assert study.name.startswith("plan-verify-1-")
    assert main(["plan", str(path), "--verify", "-1"]) == 2


def test_at_a_request_rate_the_users_start_at_the_replicas_rate() -> None:
    data = _plan()
    data["workload"] = {"scenarios": ["D(256,64)"], "request_rate": 6.0, "max_requests": 64}
    spec = plan_from_dict(data)
    candidate = tuner.plan(spec).ranked[0]
    study = verification_spec(spec, candidate, 1)
    assert study.workload.spawn_rate == max(1, round(6.0 / candidate.replicas))
    assert study.workload.concurrency == [int(candidate.metrics["users_per_replica"])]
