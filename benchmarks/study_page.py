"""How long the study page of a 600-trial study takes to show its rows in Chromium.

Run from the repository root: ``python benchmarks/study_page.py [--loads N]``. Needs Debian's
chromium and chromium-driver (``make browser``).

Starts the service as ``autotuner serve`` does, runs the 600-point estimate grid of the browser
test through the API (in process, about ten seconds), then loads its page N times in a fresh
headless Chromium each, timing from the request to the grid's paging summary naming 600 rows.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script

from tests.api.live import live_service  # noqa: E402
from tests.ui.chromium import chromium  # noqa: E402
from tests.ui.test_browser import GRID_600, finished_study  # noqa: E402


def load_seconds(url: str) -> float:
    """Seconds from ``get(url)`` to the grid's summary counting 600 rows, in a new browser."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as driver:
        started = time.monotonic()
        driver.get(url)
        WebDriverWait(driver, 60).until(ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".ag-paging-row-summary-panel"), "600"))
        return time.monotonic() - started


def main() -> int:
    """Prints each load time and their median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, live_service(pathlib.Path(tmp)) as service:
        started = time.monotonic()
        study_id = finished_study(service.base, GRID_600)
        print(f"600-trial estimate study through the API: {time.monotonic() - started:.1f} s")
        times = [load_seconds(f"{service.base}/ui/study/{study_id}") for _ in range(args.loads)]
    print("page loads (s):", ", ".join(f"{t:.2f}" for t in times))
    print(f"median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
