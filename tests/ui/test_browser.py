"""End to end in headless Chromium: the quickstart study submitted through the form, on the
real service (Ray, twin servers, genai-bench), with the trials and the best card appearing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.live import LiveService, live_service

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                       reason="needs Debian's chromium and chromium-driver"),
]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1000"]


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver

    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(
        shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


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
        driver.find_element(By.XPATH, "//button[contains(., 'Submit study')]").click()
        wait.until(ec.url_contains("/ui/study/quickstart-"))
        study_id = driver.current_url.rsplit("/", 1)[-1]
        study = httpx.get(f"{service.base}/api/studies/{study_id}").json()
        assert study["spec"]["workload"]["concurrency"] == [8]

        # the trials table fills in from the live events, without a reload
        WebDriverWait(driver, 240).until(ec.presence_of_element_located(
            (By.XPATH, "//table//tbody//tr[.//*[contains(@class, 'q-chip')]]")))
        # ... and the best card shows the exact launch command once a trial met the SLO
        launch = WebDriverWait(driver, 420).until(ec.presence_of_element_located(
            (By.XPATH, "//*[contains(@class, 'launch')]//code")))
        assert "--max-running-requests" in launch.text
        best = httpx.get(f"{service.base}/api/studies/{study_id}/best").json()
        assert best["trial"]["trial_id"]
        chart = driver.find_elements(By.XPATH, "//canvas")
        assert chart, "the throughput-vs-latency chart is drawn"
        rows = driver.find_elements(By.XPATH, "//table//tbody//tr")
        assert len(rows) >= 1

        driver.find_element(By.XPATH, "//button[contains(., 'Stop')]").click()
        WebDriverWait(driver, 180).until(ec.presence_of_element_located(
            (By.XPATH, "//*[contains(@class, 'q-chip')]//*[text()='stopped' or "
                       "text()='completed']")))
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        print(service.log_tail(80))
        raise
