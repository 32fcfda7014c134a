"""UI tests with NiceGUI's ``user`` fixture (no browser): the pages of ``main_app.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# NiceGUI's pytest plugin (``nicegui.testing.user_plugin``), without ``pytest_plugins``, which
# only the rootdir's conftest may set: its fixtures, and its configure hook (session storage
# in a temp folder, the ``nicegui_main_file`` marker).
from nicegui.testing.general_fixtures import pytest_configure as _nicegui_configure
from nicegui.testing.user_plugin import create_user, user  # noqa: F401

if TYPE_CHECKING:
    from service import Service

MAIN_FILE = "tests/ui/main_app.py"  # relative to the folder of pyproject.toml
# The services ``main_app.py`` built (one per test that opens a page): the pages are bound to
# theirs, and tests reach it through :func:`service`.
BUILT: list[Service] = []


def service() -> Service:
    """The service of the app the running test's ``user`` sees."""
    return BUILT[-1]


def pytest_configure(config: pytest.Config) -> None:
    _nicegui_configure(config)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def ui_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh store for the app each test; studies still running are stopped after it."""
    path = tmp_path / "store.db"
    monkeypatch.setenv("AUTOTUNER_UI_TEST_STORE", str(path))
    monkeypatch.delenv("AUTOTUNER_TOKEN", raising=False)
    yield path
    while BUILT:
        BUILT.pop().manager.shutdown(timeout=10)
