"""The NiceGUI main file of the ``user``-fixture tests: the service over a temp store.

Studies are run by the fake driver; ``tests/ui/conftest.py`` sets the environment and reaches
the service through ``BUILT``.
"""

import os
from pathlib import Path

import webapp
from tests.api.fakes import FakeDriver
from tests.ui.conftest import BUILT

app = webapp.create_app(
    Path(os.environ["AUTOTUNER_UI_TEST_STORE"]),
    token=os.environ.get("AUTOTUNER_UI_TEST_TOKEN") or "",
    ray_dashboard=os.environ.get("AUTOTUNER_UI_TEST_DASHBOARD") == "1",
    driver=FakeDriver(level_delay=float(os.environ.get("AUTOTUNER_UI_TEST_DELAY", "0.01"))),
)
BUILT.append(app.state.service)
