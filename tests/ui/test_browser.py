"""End to end in headless Chromium: the quickstart study submitted through the form, on the
real service (Ray, twin servers, genai-bench), with the trials and the best card appearing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.live import LiveService, live_service
from tests.ui.chromium import chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                       reason="needs Debian's chromium and chromium-driver"),
]


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    with live_service(tmp_path, gpus=2) as live:
        yield live


def test_quickstart_through_the_form(service: LiveService, browser: object,
                                     tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    driver = browser
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(f"{service.base}/")  # redirects to the UI
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[text()='Studies']")))
        assert driver.current_url.endswith("/ui/")

        driver.get(f"{service.base}/ui/new")
        name = wait.until(ec.presence_of_element_located((By.ID, "study-name")))
        assert name.get_attribute("value") == "quickstart"
        concurrency = driver.find_element(By.ID, "concurrency")
        concurrency.send_keys(Keys.CONTROL, "a")
        concurrency.send_keys("8", Keys.TAB)
        # The twin at 4x real time, start-up included: the same study, sooner.
        scale = driver.find_element(By.ID, "time-scale")
        scale.send_keys(Keys.CONTROL, "a")
        scale.send_keys("4", Keys.TAB)
        driver.find_element(By.XPATH, "//button[contains(., 'Submit study')]").click()
        wait.until(ec.url_contains("/ui/study/quickstart-"))
        study_id = driver.current_url.rsplit("/", 1)[-1]
        study = httpx.get(f"{service.base}/api/studies/{study_id}").json()
        assert study["spec"]["workload"]["concurrency"] == [8]
        assert study["spec"]["backend"]["time_scale"] == 4

        # the trials table fills in from the live events, without a reload
        WebDriverWait(driver, 240).until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, ".ag-center-cols-container .ag-row .q-chip")))
        # ... and the best card shows the exact launch command once a trial met the SLO
        launch = WebDriverWait(driver, 420).until(ec.presence_of_element_located(
            (By.XPATH, "//*[contains(@class, 'launch')]//code")))
        assert "--max-running-requests" in launch.text
        best = httpx.get(f"{service.base}/api/studies/{study_id}/best").json()
        assert best["trial"]["trial_id"]
        chart = driver.find_elements(By.XPATH, "//canvas")
        assert chart, "the throughput-vs-latency chart is drawn"
        rows = driver.find_elements(By.CSS_SELECTOR, ".ag-center-cols-container .ag-row")
        assert len(rows) >= 1

        driver.find_element(By.XPATH, "//button[contains(., 'Stop')]").click()
        WebDriverWait(driver, 180).until(ec.presence_of_element_located(
            (By.XPATH, "//*[contains(@class, 'q-chip')]//*[text()='stopped' or "
                       "text()='completed']")))
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        print(service.log_tail(80))
        raise


# A 600-point estimate grid (in-process: about ten seconds), the size of study the page must
# serve; benchmarks/study_page.py times the same page load.
GRID_600: dict[str, object] = {
    "name": "grid600",
    "model": {"name": "Llama-3.1-8B-Instruct"},
    "backend": {"kind": "estimate", "gpu": "H100", "gpus": 8},
    "space": {"tp_size": [1, 2, 4, 8], "max_running_requests": [16, 32, 64, 128, 256],
              "chunked_prefill_size": [1024, 2048, 4096, 8192, -1],
              "schedule_policy": ["lpm", "fcfs"], "mem_fraction_static": [0.8, 0.85, 0.9]},
    "workload": {"scenarios": ["D(1024,256)"], "concurrency": [8, 32, 128],
                 "max_requests_per_level": 100},
    "objective": {"slo": {"ttft_p99_ms": 2000, "tpot_p99_ms": 50}},
    "search": {"algorithm": "grid", "prescreen": None, "confirm": {"top_k": 0}},
}


def finished_study(base: str, spec: dict[str, object], timeout: float = 240) -> str:
    """Submit ``spec`` to the service and wait until it completed; its id."""
    import time

    study_id = httpx.post(f"{base}/api/studies", json=spec, timeout=30).json()["study_id"]
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base}/api/studies/{study_id}").json()["state"] != "completed":
        assert time.monotonic() < deadline, "the study did not complete"
        time.sleep(0.5)
    return study_id


def test_a_600_trial_study_page_pages_and_compares(service: LiveService, browser: object,
                                                   tmp_path: Path) -> None:
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    driver = browser
    study_id = finished_study(service.base, GRID_600)
    try:
        started = time.monotonic()
        driver.get(f"{service.base}/ui/study/{study_id}")
        WebDriverWait(driver, 30).until(ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".ag-paging-row-summary-panel"), "600"))
        print(f"600-trial study page: rows shown {time.monotonic() - started:.2f} s after get")
        rows = driver.find_elements(By.CSS_SELECTOR, ".ag-center-cols-container .ag-row")
        assert 0 < len(rows) <= 50  # one page of the 600
        # sorting by score puts the best first
        header = driver.find_element(By.XPATH, "//*[contains(@class,'ag-header-cell-text')]"
                                               "[text()='goodput']")
        header.click()
        header.click()  # descending
        best = httpx.get(f"{service.base}/api/studies/{study_id}").json()["best_trial_id"]
        WebDriverWait(driver, 10).until(lambda d: d.find_element(
            By.CSS_SELECTOR, ".ag-center-cols-container .ag-row[row-index='0']")
            .get_attribute("row-id") == best)
        # tick two rows: the comparison shows their levels side by side
        for index in (0, 1):
            box = driver.find_element(
                By.CSS_SELECTOR, f".ag-center-cols-container .ag-row[row-index='{index}'] input")
            # AG Grid's box is a styled input the page's fixed header may cover: click it
            # the way the browser does when the user clicks its wrapper
            driver.execute_script("arguments[0].click()", box)
        table = WebDriverWait(driver, 10).until(ec.presence_of_element_located(
            (By.XPATH, "//th[text()='Level']/ancestor::table")))
        assert len(table.find_elements(By.XPATH, ".//thead//th")) == 3
        assert len(table.find_elements(By.XPATH, ".//tbody//tr")) >= 1
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        print(service.log_tail(80))
        raise
