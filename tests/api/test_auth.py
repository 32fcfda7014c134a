"""Bearer-token auth: every /api call needs the token once one is set."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

TOKEN = "s3cret-token"


@pytest.fixture(params=["argument", "environment"])
def app(request: pytest.FixtureRequest, make_app: Callable[..., FastAPI],
        monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    if request.param == "argument":
        monkeypatch.delenv("AUTOTUNER_TOKEN", raising=False)
        return make_app(token=TOKEN)
    monkeypatch.setenv("AUTOTUNER_TOKEN", TOKEN)
    return make_app()


@pytest.mark.parametrize("path", ["/api/health", "/api/studies", "/api/studies/x",
                                  "/api/studies/x/events", "/api/studies/x/trials.csv"])
def test_requests_without_the_token_are_refused(app: FastAPI, path: str) -> None:
    with TestClient(app) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}):
            response = client.get(path, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"] == "AuthError"
            assert "Authorization: Bearer" in response.json()["message"]
        assert client.post("/api/studies", json={}).status_code == 401
        assert client.delete("/api/studies/x").status_code == 401


def test_the_token_opens_the_api(app: FastAPI) -> None:
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/health", headers=headers).status_code == 200
        assert client.get("/api/studies/x", headers=headers).status_code == 404
        # the docs stay readable; what they describe still needs the token
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_no_token_means_no_auth(make_app: Callable[..., FastAPI],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNER_TOKEN", "")
    with TestClient(make_app()) as client:
        assert client.get("/api/health").status_code == 200


def test_the_token_is_never_taken_from_the_url(app: FastAPI) -> None:
    with TestClient(app) as client:
        response = client.get(f"/api/studies?token={TOKEN}")
        assert response.status_code == 401
        assert "never accepted" in response.json()["message"]


def test_a_session_cookie_stands_for_the_token(app: FastAPI) -> None:
    with TestClient(app) as client:
        assert client.post("/api/session").status_code == 401
        response = client.post("/api/session", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 204
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api" in cookie
        assert TOKEN not in cookie
        assert client.get("/api/studies").status_code == 200  # the client keeps the cookie
        assert client.delete("/api/session").status_code == 204
        assert client.get("/api/studies").status_code == 401
        client.cookies.set("autotuner_session", "forged")
        assert client.get("/api/studies").status_code == 401
        # a wrong header is not rescued by a good cookie
        client.post("/api/session", headers={"Authorization": f"Bearer {TOKEN}"})
        assert client.get("/api/studies",
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
