"""The REST API over a temp store, with a fake driver running the studies."""

from __future__ import annotations

import csv
import io
import json
import threading
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.api.conftest import wait_for
from tests.api.fakes import FakeDriver
from tuner.spec import spec_from_dict


def _finished(client: TestClient, study_id: str) -> dict[str, Any] | None:
    body = client.get(f"/api/studies/{study_id}").json()
    return body if body["state"] in ("completed", "stopped", "failed") and \
        not body["active"] else None


def _events(text: str) -> list[dict[str, Any]]:
    """Parse an SSE body into ``{"id", "event", "data"}`` dicts (comments as ``comment``)."""
    out = []
    for block in text.strip().split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.splitlines():
            key, _, value = line.partition(": ")
            if key == "":
                event["comment"] = value
            elif key == "data":
                event["data"] = json.loads(value)
            else:
                event[key] = value
        out.append(event)
    return out


def test_health(client: TestClient) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["store"].endswith("store.db")
    assert body["ray_started"] is False


def test_create_run_and_inspect(client: TestClient, spec: dict[str, Any],
                                driver: FakeDriver) -> None:
    response = client.post("/api/studies", json=spec)
    assert response.status_code == 201, response.text
    created = response.json()
    study_id = created["study_id"]
    assert study_id.startswith("svc-test-")
    assert created["state"] in ("queued", "running", "completed")
    assert created["max_trials"] == 4  # the grid 2 x 2

    done = wait_for(lambda: _finished(client, study_id))
    assert done["state"] == "completed"
    assert done["progress"] == 1.0
    assert done["n_trials"] == done["n_finished"] == 4
    assert done["best"]["trial_id"] == done["best_trial_id"]
    assert driver.ray_inits == 1

    trials = client.get(f"/api/studies/{study_id}/trials").json()
    assert [t["number"] for t in trials] == [1, 2, 3, 4]
    assert all(t["state"] == "completed" and len(t["levels"]) == 2 for t in trials)

    listed = client.get("/api/studies").json()
    assert [s["study_id"] for s in listed] == [study_id]
    assert listed[0]["best"]["score"] == done["best"]["score"]


def test_the_result_is_what_the_cli_prints(client: TestClient, spec: dict[str, Any]) -> None:
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    wait_for(lambda: _finished(client, study_id))
    result = client.get(f"/api/studies/{study_id}/result").json()
    best = client.get(f"/api/studies/{study_id}/best").json()
    assert result["study"] == study_id and result["state"] == "completed"
    assert [t["number"] for t in result["trials"]] == [1, 2, 3, 4]
    assert result["best"]["trial"] == best["trial"]["trial_id"]
    assert result["best"]["score"] == best["trial"]["score"]
    assert client.get("/api/studies/nope/result").status_code == 404


def test_yaml_body(client: TestClient, spec: dict[str, Any]) -> None:
    response = client.post("/api/studies", content=yaml.safe_dump(spec),
                           headers={"content-type": "application/yaml"})
    assert response.status_code == 201, response.text
    # The YAML became the very spec the same body as JSON does, not just some valid spec.
    as_json = client.post("/api/studies", json=spec)
    assert as_json.status_code == 201, as_json.text
    assert response.json()["spec"] == as_json.json()["spec"] == \
        spec_from_dict(spec).model_dump(mode="json")


@pytest.mark.parametrize(("body", "path", "reason"), [
    ({"modle": {}}, "modle", "did you mean 'model'?"),
    ({"backend": {"kind": "twin", "gpus": 0}}, "backend.gpus", "greater than or equal to 1"),
    ({"workload": {"concurrency": [16, 4]}}, "workload.concurrency", "ascending"),
    ({"space": {"tp_size": [1, 4]}}, "space.tp_size", "never fit"),
    ({"name": "Bad Name"}, "name", "pattern"),
])
def test_bad_spec_lists_field_paths(client: TestClient, spec: dict[str, Any],
                                    body: dict[str, Any], path: str, reason: str) -> None:
    response = client.post("/api/studies", json={**spec, **body})
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "SpecError"
    assert "not a valid study spec" in error["message"]
    matching = [e for e in error["errors"] if e["path"] == path]
    assert matching, error["errors"]
    assert reason in matching[0]["reason"]
    assert client.get("/api/studies").json() == []


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "empty"), (b"{not json", "not valid JSON"), (b"[1, 2]", "mapping")])
def test_unreadable_body(client: TestClient, content: bytes, expected: str) -> None:
    response = client.post("/api/studies", content=content,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "SpecError"
    assert expected in response.json()["message"]


def test_bad_query_parameter(client: TestClient, spec: dict[str, Any]) -> None:
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    response = client.get(f"/api/studies/{study_id}/events?after=-3")
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "query.after"


@pytest.mark.parametrize("path", ["", "/trials", "/events", "/events.json", "/best",
                                  "/best/download", "/trials.csv"])
def test_unknown_study_is_404(client: TestClient, path: str) -> None:
    response = client.get(f"/api/studies/nope-123456{path}")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "StudyNotFoundError"
    assert "nope-123456" in body["message"]


def test_trials_and_events_come_in_pages(client: TestClient, spec: dict[str, Any]) -> None:
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    wait_for(lambda: _finished(client, study_id))
    numbers, url, pages = [], f"/api/studies/{study_id}/trials?limit=3", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        numbers += [t["number"] for t in response.json()]
        pages += 1
        link = response.headers.get("link")
        assert (link is None) == ("x-next-cursor" not in response.headers)
        url = link.split(";")[0].strip("<>") if link else ""
    assert numbers == [1, 2, 3, 4] and pages == 2
    everything = client.get(f"/api/studies/{study_id}/events.json").json()
    seqs, cursor = [], "0"
    while cursor:
        response = client.get(f"/api/studies/{study_id}/events.json",
                              params={"limit": 5, "cursor": cursor})
        seqs += [e["seq"] for e in response.json()]
        cursor = response.headers.get("x-next-cursor", "")
    assert seqs == [e["seq"] for e in everything] and len(seqs) > 5


@pytest.mark.parametrize("query, field", [("limit=0", "query.limit"),
                                          ("limit=5000", "query.limit"),
                                          ("cursor=abc", "query.cursor"),
                                          ("cursor=-1", "query.cursor")])
def test_bad_page_parameters_name_the_field(client: TestClient, spec: dict[str, Any],
                                            query: str, field: str) -> None:
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    for path in ("trials", "events.json"):
        response = client.get(f"/api/studies/{study_id}/{path}?{query}")
        assert response.status_code == 422
        assert response.json()["errors"][0]["path"] == field


def test_unknown_study_commands_are_404(client: TestClient) -> None:
    assert client.post("/api/studies/nope/stop").status_code == 404
    assert client.post("/api/studies/nope/resume").status_code == 404
    assert client.delete("/api/studies/nope").status_code == 404


def test_stop_resume_delete(client: TestClient, spec: dict[str, Any], hold: threading.Event,
                            driver: FakeDriver) -> None:
    hold.clear()
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    wait_for(lambda: client.get(f"/api/studies/{study_id}").json()["state"] == "running")

    busy = client.delete(f"/api/studies/{study_id}")
    assert busy.status_code == 409
    assert busy.json()["error"] == "StudyBusyError"
    assert busy.json()["study_id"] == study_id
    assert client.post(f"/api/studies/{study_id}/resume").status_code == 409

    assert client.post(f"/api/studies/{study_id}/stop").status_code == 202
    stopped = wait_for(lambda: _finished(client, study_id))
    assert stopped["state"] == "stopped"
    trials = client.get(f"/api/studies/{study_id}/trials").json()
    assert [t["state"] for t in trials] == ["stopped"]

    hold.set()
    resumed = client.post(f"/api/studies/{study_id}/resume")
    assert resumed.status_code == 202
    done = wait_for(lambda: _finished(client, study_id))
    assert done["state"] == "completed"
    assert driver.runs == [(study_id, False), (study_id, True)]
    assert client.post(f"/api/studies/{study_id}/resume").status_code == 409

    assert client.delete(f"/api/studies/{study_id}").status_code == 204
    assert client.get(f"/api/studies/{study_id}").status_code == 404


def test_queue_runs_one_at_a_time(make_app: Any, spec: dict[str, Any],
                                  hold: threading.Event) -> None:
    hold.clear()
    with TestClient(make_app(max_running=1)) as client:
        first = client.post("/api/studies", json=spec).json()["study_id"]
        second = client.post("/api/studies", json=spec).json()["study_id"]
        wait_for(lambda: client.get(f"/api/studies/{first}").json()["state"] == "running")
        queued = client.get(f"/api/studies/{second}").json()
        assert queued["state"] == "queued" and queued["active"]
        assert client.get("/api/health").json()["active"] == [first, second]

        stopped = client.post(f"/api/studies/{second}/stop").json()
        assert stopped["state"] == "stopped"
        assert stopped["message"] == "stopped before it started"
        hold.set()
        assert wait_for(lambda: _finished(client, first))["state"] == "completed"
        assert client.get(f"/api/studies/{second}/trials").json() == []


def test_events_stream(client: TestClient, spec: dict[str, Any]) -> None:
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    wait_for(lambda: _finished(client, study_id))
    response = client.get(f"/api/studies/{study_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "study_started" and kinds[-1] == "study_finished"
    assert kinds.count("trial_started") == kinds.count("trial_finished") == 4
    assert kinds.count("level_measured") == 8
    assert all(e["id"] == str(e["data"]["seq"]) for e in events)
    assert events[-1]["data"]["data"]["state"] == "completed"
    level = next(e for e in events if e["event"] == "level_measured")["data"]
    assert level["data"]["level"]["concurrency"] == 4
    assert "meets_slo" in level["data"]

    third = int(events[2]["id"])
    after = _events(client.get(f"/api/studies/{study_id}/events?after={third}").text)
    assert [e["id"] for e in after] == [e["id"] for e in events[3:]]
    again = _events(client.get(f"/api/studies/{study_id}/events?after=0",
                               headers={"Last-Event-ID": str(third)}).text)
    assert [e["id"] for e in again] == [e["id"] for e in events[3:]]


def test_events_stream_live_with_keepalive(client: TestClient, spec: dict[str, Any],
                                           hold: threading.Event) -> None:
    client.app.state.service.keepalive_s = 0.05  # type: ignore[attr-defined]
    hold.clear()
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    wait_for(lambda: client.get(f"/api/studies/{study_id}/trials").json())
    release = threading.Timer(0.6, hold.set)
    release.start()
    try:
        text = client.get(f"/api/studies/{study_id}/events").text  # ends with the study
    finally:
        release.cancel()
        hold.set()
    events = _events(text)
    assert any(e.get("comment") == "keep-alive" for e in events)
    assert [e["event"] for e in events if "event" in e][-1] == "study_finished"


def test_best_config_and_csv(client: TestClient, spec: dict[str, Any]) -> None:
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    done = wait_for(lambda: _finished(client, study_id))

    best = client.get(f"/api/studies/{study_id}/best").json()
    assert best["trial"]["trial_id"] == done["best_trial_id"]
    assert best["kind"] == "twin"
    assert best["text"].startswith("python -m sglang.launch_server")
    assert f"--tp-size {best['trial']['params']['tp_size']}" in best["text"]

    download = client.get(f"/api/studies/{study_id}/best/download")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == \
        f'attachment; filename="{study_id}-best.sh"'
    assert download.text.strip() == best["text"].strip()

    response = client.get(f"/api/studies/{study_id}/trials.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 8  # 4 trials x 2 levels
    assert {"trial_id", "state", "score", "param.tp_size", "concurrency", "ttft_p99_ms"} \
        <= set(rows[0])
    assert {r["concurrency"] for r in rows} == {"4", "16"}
    timings = {(r["deploy_s"], r["warmup_s"], r["bench_s"]) for r in rows}
    assert timings == {("12.5", "0.25", "6.0")}


def test_no_best_yet(client: TestClient, spec: dict[str, Any]) -> None:
    spec["objective"] = {"slo": {"ttft_p99_ms": 1}}  # nothing meets it
    study_id = client.post("/api/studies", json=spec).json()["study_id"]
    wait_for(lambda: _finished(client, study_id))
    response = client.get(f"/api/studies/{study_id}/best")
    assert response.status_code == 404
    assert response.json()["error"] == "NoBestTrialError"
    assert response.json()["study_id"] == study_id


def test_failed_trials_and_failing_driver(make_app: Any, spec: dict[str, Any]) -> None:
    class Broken(FakeDriver):
        def run_study(self, *args: Any, **kwargs: Any) -> None:
            from tuner.exceptions import NotSupportedError

            raise NotSupportedError("backend 'twin' cannot set x: no reason")

    with TestClient(make_app(driver=FakeDriver(fail_numbers=(2,)))) as client:
        study_id = client.post("/api/studies", json=spec).json()["study_id"]
        wait_for(lambda: _finished(client, study_id))
        trials = client.get(f"/api/studies/{study_id}/trials").json()
        assert trials[1]["state"] == "failed" and trials[1]["reason"] == "oom"
    with TestClient(make_app(driver=Broken())) as client:
        study_id = client.post("/api/studies", json=spec).json()["study_id"]
        failed = wait_for(lambda: _finished(client, study_id))
        assert failed["state"] == "failed"
        assert "cannot set x" in failed["message"]
        events = _events(client.get(f"/api/studies/{study_id}/events").text)
        assert events[-1]["event"] == "study_finished"
        assert events[-1]["data"]["data"]["state"] == "failed"


def test_openapi_documents_the_spec_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/studies"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StudySpec"}
    components = schema["components"]["schemas"]
    assert "workload" in components["StudySpec"]["properties"]
    assert "WorkloadSpec" in components and "StudyView" in components
    events = schema["paths"]["/api/studies/{study_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert client.get("/docs").status_code == 200
