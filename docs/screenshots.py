"""Take the UI screenshots of docs/service.md from the real app in headless Chromium.

    .venv/bin/python docs/screenshots.py            # writes docs/ui-*.png

Starts the service (as ``autotuner serve`` does) on a free port over a temp store, runs a few
studies on the ``estimate`` backend (seconds each) and one on the twin, and photographs the
studies page, the new-study form and a finished study. Needs Debian's ``chromium`` and
``chromium-driver``; never downloads a browser.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(store: Path, port: int, log: Path, ray_tmp: str,
                  gpus: int = 4) -> subprocess.Popen[bytes]:
    """``autotuner serve`` in a subprocess (the same ``webapp.serve`` call the CLI makes)."""
    code = ("import sys, webapp; webapp.serve('127.0.0.1', int(sys.argv[1]), sys.argv[2], "
            "gpus=int(sys.argv[3]))")
    env = {**os.environ, "AUTOTUNER_HOME": str(store.parent), "RAY_TMPDIR": ray_tmp}
    env.pop("AUTOTUNER_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(port), str(store), str(gpus)], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the service did not come up; see {log}")


def stop_service(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C: running studies stop and their servers go, then the process exits."""
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chromium(width: int = 1440, height: int = 1000) -> webdriver.Chrome:
    """Debian's headless Chromium with a fresh profile."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=options,
                            service=webdriver.ChromeService("/usr/bin/chromedriver"))


def wait_idle(base: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not httpx.get(f"{base}/api/health", timeout=5).json()["active"]:
            return
        time.sleep(1)
    raise RuntimeError("studies did not finish in time")


def shoot(driver: webdriver.Chrome, path: Path, full_height: bool = True) -> None:
    time.sleep(1.0)  # let charts and chips settle
    if full_height:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1440, min(max(int(height) + 40, 900), 2400))
        time.sleep(0.5)
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"cannot write {path}")
    driver.set_window_size(1440, 1000)
    print(f"wrote {path}")


def estimate_spec(quickstart: dict[str, Any], name: str, **search: Any) -> dict[str, Any]:
    spec = copy.deepcopy(quickstart)
    spec["name"] = name
    spec["backend"] = {"kind": "estimate", "gpu": "H100", "gpus": 2}
    spec["search"] = {**spec.get("search", {}), **search}
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    quickstart = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    work = Path(tempfile.mkdtemp(prefix="autotuner-shots-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's sockets live there
    service = start_service(work / "store.db", port, work / "service.log", ray_tmp)
    driver = None
    try:
        # a finished study worth looking at, an older one, and one queued behind the twin
        wide = estimate_spec(quickstart, "chat-8b-h100", max_trials=12)
        wide["space"] = {"max_running_requests": [4, 8, 16, 32, 64],
                         "chunked_prefill_size": [512, 2048, 4096, 8192],
                         "schedule_policy": ["fcfs", "lpm"]}
        wide["workload"]["concurrency"] = [4, 8, 16, 32]
        first = httpx.post(f"{base}/api/studies", json=wide, timeout=30).json()["study_id"]
        httpx.post(f"{base}/api/studies", timeout=30,
                   json=estimate_spec(quickstart, "chat-8b-grid", algorithm="grid",
                                      max_trials=None))
        wait_idle(base)
        driver = chromium()
        driver.get(f"{base}/ui/study/{first}")
        WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located(
            (By.XPATH, "//*[contains(text(), 'Launch command')]")))
        shoot(driver, args.out / "ui-study.png")

        driver.get(f"{base}/ui/new")
        WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located(
            (By.XPATH, "//*[contains(text(), 'Search space')]")))
        shoot(driver, args.out / "ui-new-study.png")

        live = copy.deepcopy(quickstart)
        live["name"] = "quickstart-twin"
        httpx.post(f"{base}/api/studies", json=live, timeout=30)
        httpx.post(f"{base}/api/studies", timeout=30,
                   json=estimate_spec(quickstart, "queued-behind", max_trials=4))
        httpx.post(f"{base}/api/studies", timeout=30,
                   json=estimate_spec(quickstart, "queued-next", max_trials=4))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until the twin study runs trials
            studies = httpx.get(f"{base}/api/studies", timeout=30).json()
            if any(s["state"] == "running" and s["n_trials"] for s in studies):
                break
            time.sleep(1)
        driver.get(f"{base}/ui/")
        WebDriverWait(driver, 60).until(expected_conditions.presence_of_element_located(
            (By.XPATH, "//*[contains(text(), 'running')]")))
        time.sleep(3)
        shoot(driver, args.out / "ui-studies.png", full_height=False)
    finally:
        if driver is not None:
            driver.quit()
        stop_service(service)
        shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
