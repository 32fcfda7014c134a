"""Fixtures for the API tests: an app over a temp store, run by a fake driver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import create_app
from service import open_service
from tests.api.fakes import QUICK_SPEC, FakeDriver


@pytest.fixture
def hold() -> threading.Event:
    """Cleared: running fake studies wait before each level. Set it to let them go on."""
    return threading.Event()


@pytest.fixture
def driver(hold: threading.Event) -> FakeDriver:
    hold.set()
    return FakeDriver(hold=hold)


@pytest.fixture
def make_app(tmp_path: Path, driver: FakeDriver) -> Callable[..., FastAPI]:
    def make(**kwargs: Any) -> FastAPI:
        kwargs.setdefault("driver", driver)
        return create_app(open_service(tmp_path / "store.db", **kwargs))

    return make


@pytest.fixture
def client(make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch,
           ) -> Iterator[TestClient]:
    monkeypatch.delenv("AUTOTUNER_TOKEN", raising=False)
    with TestClient(make_app()) as test_client:
        yield test_client


@pytest.fixture
def spec() -> dict[str, Any]:
    return {**QUICK_SPEC}


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met in {timeout} s")
