"""``/api/plans``: a plan over HTTP, its errors named by field, and its verification queued as
studies of the service."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.api.conftest import wait_for

PLAN: dict[str, Any] = {
    "model": {"name": "Llama-3.1-8B-Instruct"},
    "workload": {"scenarios": ["D(512,128)"], "users": 16, "max_requests": 48},
    "slo": {"ttft_p99_ms": 3000, "tpot_p99_ms": 60},
    "gpus": {"types": ["H100", "L40S"], "tp_sizes": [1, 2], "max_gpus": 4},
    "space": {"max_running_requests": [None, 8]},
}
JSON = {"content-type": "application/json"}


def test_a_plan_is_ranked_with_its_rejections(client: TestClient) -> None:
    response = client.post("/api/plans", content=yaml.safe_dump(PLAN),
                           headers={"content-type": "application/yaml"})
    assert response.status_code == 200, response.text[:500]
    plan = response.json()
    assert plan["best"] == plan["ranked"][0] and plan["best"]["meets_slo"]
    costs = [row["usd_per_hour"] for row in plan["ranked"]]
    assert costs == sorted(costs)
    assert all(row["reason"] for row in plan["rejected"])
    assert plan["prices"]["L40S"]["source"].startswith("https://")
    assert client.get("/api/studies").json() == []  # a plan runs nothing


def test_a_bad_plan_is_a_422_naming_the_field(client: TestClient) -> None:
    for changes, path in (({"gpus": {"types": ["H1000"]}}, "gpus.types.0"),
                          ({"colour": 1}, "colour"),
                          ({"gpus": {"types": ["H100"], "max_gpus": 512, "tp_sizes": [1]},
                            "space": {"max_running_requests": list(range(1, 60))}}, "gpus"),
                          # few layouts, but each estimate simulating 10,000 requests
                          ({"gpus": {"types": ["H100", "H200", "A100-80G", "L40S"],
                                     "max_gpus": 64},
                            "workload": {**PLAN["workload"], "max_requests": 10_000}}, "gpus")):
        response = client.post("/api/plans", content=json.dumps({**PLAN, **changes}),
                               headers=JSON)
        assert response.status_code == 422, response.text[:300]
        assert path in {e["path"] for e in response.json()["errors"]}, response.json()
    assert client.post("/api/plans", content=b"", headers=JSON).status_code == 422
    assert client.post("/api/plans", content=b"[1]", headers=JSON).status_code == 422
    assert client.post("/api/plans", content=b"x", headers={"content-type": "text/plain"}) \
        .status_code == 415


def test_verifying_queues_one_study_per_best_layout(client: TestClient) -> None:
    response = client.post("/api/plans/verify?count=2", content=json.dumps(PLAN), headers=JSON)
    assert response.status_code == 201, response.text[:500]
    body = response.json()
    best = body["plan"]["ranked"][:2]
    assert [s["name"] for s in body["studies"]] == [
        f"plan-verify-{i}-{row['gpu'].lower()}-tp{row['tp_size']}x{row['replicas']}"
        for i, row in enumerate(best, 1)]
    for study, row in zip(body["studies"], best, strict=True):
        spec = study["spec"]
        assert spec["backend"] == {**spec["backend"], "kind": "twin", "gpu": row["gpu"],
                                   "gpus": row["tp_size"]}
        assert "Planned:" in spec["description"]
    wait_for(lambda: all(s["state"] == "completed" for s in client.get("/api/studies").json()))
    assert client.post("/api/plans/verify?count=0", content=json.dumps(PLAN),
                       headers=JSON).status_code == 422
