"""The NiceGUI main file of the ``user``-fixture tests: the service over a temp store.

Studies are run by the fake driver; ``tests/ui/conftest.py`` sets the environment.
"""

import os
from pathlib import Path

import api
from tests.api.fakes import FakeDriver

app = api.create_app(
    Path(os.environ["AUTOTUNER_UI_TEST_STORE"]),
    token=os.environ.get("AUTOTUNER_UI_TEST_TOKEN") or "",
    ray_dashboard=os.environ.get("AUTOTUNER_UI_TEST_DASHBOARD") == "1",
    driver=FakeDriver(level_delay=float(os.environ.get("AUTOTUNER_UI_TEST_DELAY", "0.01"))),
)
