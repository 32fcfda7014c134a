"""UI tests with NiceGUI's ``user`` fixture (no browser): the pages of ``main_app.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# NiceGUI's pytest plugin (``nicegui.testing.user_plugin``), without ``pytest_plugins``, which
# only the rootdir's conftest may set: its fixtures, and its configure hook (session storage
# in a temp folder, the ``nicegui_main_file`` marker).
from nicegui.testing.general_fixtures import pytest_configure as _nicegui_configure
from nicegui.testing.user_plugin import create_user, user  # noqa: F401

MAIN_FILE = "tests/ui/main_app.py"  # relative to the folder of pyproject.toml


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
    from ui._shell import service

    try:
        service().manager.shutdown(timeout=10)
    except KeyError:  # no app was built
        pass
