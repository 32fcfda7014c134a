"""Bad input and attacks against the service (issue 9): always a 4xx naming what is wrong,
never a 5xx, never a stalled event loop, never a token in a URL or a log."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import wait_for
from tests.api.fakes import QUICK_SPEC
from tests.api.live import live_service
from tests.changes import changed
from webapp import RedactQuery, is_loopback

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def secured(make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch,
            ) -> Iterator[TestClient]:
    monkeypatch.delenv("AUTOTUNER_TOKEN", raising=False)
    with TestClient(make_app(token=TOKEN), headers=AUTH) as client:
        yield client


def spec(**changes: Any) -> dict[str, Any]:
    return changed(QUICK_SPEC, **changes)


def body(data: Any) -> bytes:
    return json.dumps(data).encode()  # Python's json writes NaN and Infinity as JS does


def task(**changes: Any) -> dict[str, Any]:
    """A body in the earlier prototype's task format."""
    data: dict[str, Any] = {
        "task_name": "proto", "deployment_mode": "docker",
        "model": {"id_or_path": "Llama-3.1-8B-Instruct"},
        "parameters": {"tp-size": [1, 2]},
        "benchmark": {"num_concurrency": [1, 4], "max_time_per_iteration": 1},
    }
    data.update(changes)
    return data


JSON = "application/json"
YAML = "application/yaml"
TERMS_2000 = " + ".join(["tp_size"] * 2000) + " > 0"

# (body, content type, status, field path the error names)
HAND_MADE: list[Any] = [
    # constraint expressions that answered 500
    pytest.param(body(spec(constraints=[TERMS_2000])), JSON, 422, "constraints.0",
                 id="constraint-2000-terms"),
    pytest.param(body(spec(constraints=["not " * 5000 + "tp_size"])), JSON, 422,
                 "constraints.0", id="constraint-not-x5000"),
    pytest.param(body(spec(constraints=["tp_size / 0 > 1"])), JSON, 422, "constraints.0",
                 id="constraint-div-zero"),
    pytest.param(body(spec(constraints=["'a' < tp_size"])), JSON, 422, "constraints.0",
                 id="constraint-str-lt-int"),
    pytest.param(body(spec(constraints=["'a' * 50000000 * tp_size == 'a'"])), JSON, 422,
                 "constraints.0", id="constraint-str-repeat"),
    # the prototype task format, malformed
    pytest.param(body(task(model="llama")), JSON, 422, "model", id="task-model-string"),
    pytest.param(body(task(parameters=["tp-size"])), JSON, 422, "parameters",
                 id="task-parameters-list"),
    pytest.param(body(task(benchmark={"max_time_per_iteration": "ten"})), JSON, 422,
                 "benchmark.max_time_per_iteration", id="task-max-time-text"),
    pytest.param(body(task(slo={"latency": {"p90": {"threshold": "fast"}}})), JSON, 422,
                 "slo.latency.p90.threshold", id="task-threshold-text"),
    pytest.param(body(task(benchmark={"num_concurrency": [[1], {"a": 1}]})), JSON, 422,
                 "benchmark.num_concurrency", id="task-concurrency-unhashable"),
    pytest.param(b"task_name: t\nparameters: &p {tp: *p}\n", YAML, 422, "spec",
                 id="task-yaml-alias-cycle"),
    pytest.param(b"task_name: t\nbenchmark: {num_concurrency: &c [1, *c]}\n", YAML, 422,
                 "spec", id="task-yaml-alias-in-concurrency"),
    pytest.param(b"a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                 b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                 b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                 b"task_name: t\nparameters: {tp-size: *f}\n", YAML, 422, "spec",
                 id="task-yaml-billion-laughs"),
    # accepted though absurd
    pytest.param(body(spec(workload__concurrency=[10**7])), JSON, 422, "workload.concurrency",
                 id="concurrency-1e7"),
    pytest.param(body(spec(workload__max_requests_per_level=10**6)), JSON, 422,
                 "workload.max_requests_per_level", id="requests-per-level-1e6"),
    pytest.param(body(spec(workload__max_seconds_per_level=86_400)), JSON, 422,
                 "workload.max_seconds_per_level", id="seconds-per-level-86400"),
    pytest.param(body(spec(trial_timeout_s=float("inf"))), JSON, 422, "trial_timeout_s",
                 id="trial-timeout-infinity"),
    pytest.param(body(spec(backend__startup_timeout_s=float("inf"))), JSON, 422,
                 "backend.startup_timeout_s", id="startup-timeout-infinity"),
    pytest.param(body(spec(search__time_budget_s=float("inf"))), JSON, 422,
                 "search.time_budget_s", id="time-budget-infinity"),
    pytest.param(body(spec(fixed={"mem_fraction_static": float("nan")})), JSON, 422,
                 "fixed.mem_fraction_static", id="fixed-nan"),
    pytest.param(b"name: x\nmodel: {name: m}\nspace: {tp_size: [1]}\ntrial_timeout_s: .inf\n",
                 YAML, 422, "trial_timeout_s", id="yaml-inf"),
    pytest.param(body(spec(space__max_running_requests=list(range(1, 1002)))), JSON, 422,
                 "space.max_running_requests", id="list-1001-values"),
    pytest.param(body(spec(space__max_running_requests=[8] * 10**6)), JSON, 413, None,
                 id="list-1e6-values"),
    pytest.param(body(spec(space__max_running_requests=list(range(1, 1001)),
                           space__cuda_graph_max_bs=list(range(1, 1001)))), JSON, 422,
                 "space", id="grid-1000x1000"),
    pytest.param(body(spec(search__max_trials=10**6)), JSON, 422, "search.max_trials",
                 id="max-trials-1e6"),
    # bodies no parser should choke on
    pytest.param(b"[" * 100_000 + b"]" * 100_000, JSON, 422, "body", id="json-nested-1e5"),
    pytest.param(b"a: " + b"[" * 10_000 + b"]" * 10_000, YAML, 422, "body",
                 id="yaml-nested-1e4"),
    pytest.param(b"\xff\xfe", JSON, 422, "body", id="json-not-utf8"),
    pytest.param(b'{"name": 1e999999}', JSON, 422, "name", id="json-huge-float"),
    pytest.param(b'{"name": ' + b"9" * 5000 + b"}", JSON, 422, "body", id="json-huge-int"),
    pytest.param(b"!!python/object/apply:os.system ['true']", YAML, 422, "body",
                 id="yaml-python-tag"),
    # content types a browser sends cross-site without asking (CSRF)
    pytest.param(body(QUICK_SPEC), "text/plain", 415, None, id="text-plain"),
    pytest.param(body(QUICK_SPEC), "application/x-www-form-urlencoded", 415, None,
                 id="form-urlencoded"),
    pytest.param(body(QUICK_SPEC), "multipart/form-data; boundary=x", 415, None,
                 id="multipart"),
    pytest.param(body(QUICK_SPEC), "", 415, None, id="no-content-type"),
    pytest.param(yaml.safe_dump(QUICK_SPEC).encode(), "text/html", 415, None, id="text-html"),
]


@pytest.mark.timeout(30)  # a body the API walks instead of refusing runs out of time
@pytest.mark.parametrize(("content", "content_type", "status", "path"), HAND_MADE)
def test_hand_made_inputs_are_4xx_naming_the_field(secured: TestClient, content: bytes,
                                                   content_type: str, status: int,
                                                   path: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = secured.post("/api/studies", content=content, headers=headers)
    assert response.status_code == status, response.text[:500]
    error = response.json()
    assert error["message"]
    if path is not None:
        assert path in {e["path"] for e in error["errors"]}, error["errors"]
    assert secured.get("/api/studies").json() == []


@pytest.mark.parametrize("where", ["/etc/passwd", "../store.db", "datasets/../../x.txt"])
def test_a_prompt_file_outside_the_datasets_folder_is_refused(secured: TestClient,
                                                               tmp_path: Path, where: str) -> None:
    # A service reads prompt files for whoever may submit a study and sends them to a model
    # server: only from its datasets folder, never /etc/passwd or the store.
    response = secured.post("/api/studies", content=body(
        spec(**{"workload__dataset": {"path": where, "format": "txt"}})),
        headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:500]
    assert "workload.dataset.path" in {e["path"] for e in response.json()["errors"]}
    assert secured.get("/api/studies").json() == []


def test_a_prompt_file_in_the_datasets_folder_is_read_from_there(secured: TestClient,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "chat.txt").write_text("hello there\nhow are you\n")
    response = secured.post("/api/studies", content=body(
        spec(**{"workload__dataset": {"path": "chat.txt"}})),
        headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text[:500]
    stored = response.json()["spec"]["workload"]["dataset"]["path"]
    assert stored == str(tmp_path / "datasets" / "chat.txt")


def test_json_and_yaml_types_are_read(secured: TestClient) -> None:
    for i, content_type in enumerate(("application/json; charset=utf-8", "application/yaml",
                                      "application/x-yaml", "text/yaml")):
        data = spec(name=f"ok-{i}")
        content = yaml.safe_dump(data).encode() if "yaml" in content_type else body(data)
        response = secured.post("/api/studies", content=content,
                                headers={"content-type": content_type})
        assert response.status_code == 201, (content_type, response.text)


def test_the_token_in_a_query_string_is_refused(secured: TestClient) -> None:
    secured.headers.pop("Authorization")
    for path in ("/api/health", "/api/studies", "/api/studies/x/events"):
        response = secured.get(f"{path}?token={TOKEN}")
        assert response.status_code == 401
        assert "URL" in response.json()["message"]


def test_validation_does_not_block_the_event_loop(secured: TestClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import api._routes as routes

    real = routes.spec_from_dict

    def slow(data: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)  # what a 100,000-point grid with constraints costs
        return real(data, **kwargs)

    monkeypatch.setattr(routes, "spec_from_dict", slow)
    posting = threading.Thread(target=secured.post, args=("/api/studies",),
                               kwargs={"json": QUICK_SPEC})
    posting.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert secured.get("/api/health").status_code == 200
    assert time.monotonic() - started < 0.8
    posting.join()


def test_views_never_enumerate_a_grid_again(secured: TestClient,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.spec import StudySpec

    grid = spec(name="big-grid", space__max_running_requests=list(range(1, 1001)),
                space__cuda_graph_max_bs=list(range(1, 6)))  # 10,000 points
    posted = secured.post("/api/studies", json=grid)
    assert posted.status_code == 201
    # The (fake) driver enumerates the grid to run it: stop it before counting the views'.
    study = f"/api/studies/{posted.json()['study_id']}"
    wait_for(lambda: secured.get(study).json()["state"] == "running")
    assert secured.post(f"{study}/stop").status_code == 202
    # Until its thread is gone the driver may still read the spec (to close the study).
    wait_for(lambda: (view := secured.get(study).json())["state"] == "stopped"
             and not view["active"])
    calls = []
    real = StudySpec.grid

    def counted(self: StudySpec, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, **kwargs)

    monkeypatch.setattr(StudySpec, "grid", counted)
    for _ in range(3):
        assert secured.get("/api/studies").status_code == 200
    assert calls == []


def test_an_unexpected_error_is_a_json_500_that_does_not_escape(
        make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOTUNER_TOKEN", raising=False)
    app = make_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    # raise_server_exceptions: an error that escaped the app (and so made uvicorn close the
    # connection) would be raised here
    with TestClient(app, raise_server_exceptions=True) as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert response.json() == {"error": "RuntimeError",
                                    "message": "internal error: a bug; see the service log"}
        assert client.get("/api/health").status_code == 200


# --- the service process -----------------------------------------------------------------------

def _raw_requests(base: str, requests: list[bytes]) -> list[bytes]:
    """Send ``requests`` one after the other on ONE connection; the status line of each."""
    host, port = base.removeprefix("http://").split(":")
    statuses = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        reader = sock.makefile("rb")
        for request in requests:
            sock.sendall(request)
            statuses.append(reader.readline().strip())
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                assert not (name.lower() == "connection" and "close" in value.lower()), line
            reader.read(length)
    return statuses


def _post(path: str, content: bytes, content_type: str, token: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(content)}\r\n\r\n"
            ).encode() + content


def test_service_keeps_connections_and_logs_no_token(tmp_path: Path) -> None:
    with live_service(tmp_path, token=TOKEN) as service:
        bad = [
            _post("/api/studies", body(spec(constraints=["tp_size / 0 > 1"])), JSON, TOKEN),
            _post("/api/studies", body(task(model="llama")), JSON, TOKEN),
            _post("/api/studies", body(QUICK_SPEC), "text/plain", TOKEN),
            _post("/api/studies", b"[" * 50_000, JSON, TOKEN),
            f"GET /api/studies?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            _post("/api/studies", body(QUICK_SPEC), JSON, "wrong"),
        ]
        good = f"GET /api/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}" \
               "\r\n\r\n"
        statuses = _raw_requests(service.base, [*bad, good.encode()])
        assert [s.split()[1] for s in statuses] == [b"422", b"422", b"415", b"422", b"401",
                                                    b"401", b"200"]
        session = httpx.post(f"{service.base}/api/session", headers=AUTH)
        assert "samesite=strict" in session.headers["set-cookie"].lower()
        ui_page = httpx.get(f"{service.base}/ui/login")
        assert "samesite=strict" in ui_page.headers["set-cookie"].lower()
        assert "httponly" in ui_page.headers["set-cookie"].lower()
    log = service.log.read_text()
    assert "/api/studies?token=***" in log, service.log_tail()
    assert TOKEN not in log


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
    ("myhost.example", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_an_open_host_without_a_token(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    from tuner.cli import main

    monkeypatch.delenv("AUTOTUNER_TOKEN", raising=False)
    ran: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.append(kwargs["host"]))
    fake = FastAPI()
    fake.state.service = SimpleNamespace(token=None)
    monkeypatch.setattr("webapp._app.create_app", lambda *a, **k: fake)
    store = str(tmp_path / "store.db")
    assert main(["--store", store, "serve", "--host", "0.0.0.0"]) == 1
    assert "refusing to serve on 0.0.0.0 without a token" in capsys.readouterr().err
    assert ran == []
    assert main(["--store", store, "serve", "--host", "0.0.0.0", "--insecure"]) == 0
    assert "WARNING: serving on 0.0.0.0:8080 with NO token" in capsys.readouterr().err
    monkeypatch.setenv("AUTOTUNER_TOKEN", TOKEN)
    assert main(["--store", store, "serve", "--host", "0.0.0.0"]) == 0
    assert main(["--store", store, "serve"]) == 0
    assert ran == ["0.0.0.0", "0.0.0.0", "127.0.0.1"]


def test_access_log_filter_blanks_secrets() -> None:
    import logging

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0,
                               '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4:5", "GET", f"/api/x?after=3&token={TOKEN}&to%6Ben=a",
                                "1.1", 401), None)
    assert RedactQuery().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "GET /api/x?after=3&token=***&to%6Ben=*** ' \
                                  'HTTP/1.1" 401'


# --- generated input ---------------------------------------------------------------------------

def test_schemathesis_finds_no_5xx(make_app: Callable[..., FastAPI],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A bounded, seeded schemathesis run over every operation of the OpenAPI schema."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    monkeypatch.delenv("AUTOTUNER_TOKEN", raising=False)
    app = make_app(token=TOKEN)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        examples = 120 if operation.method.upper() == "POST" and \
            operation.path == "/api/studies" else 20

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            nonlocal cases
            cases += 1
            response = case.call(headers=AUTH)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: "
                                f"{response.status_code} {response.text[:200]}")

        call()
    assert cases > 300
    assert failures == []
