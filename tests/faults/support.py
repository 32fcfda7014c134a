"""What the fault suite and ``benchmarks/fault_matrix.py`` share: specs, processes, waiting.

Everything here talks to the tuner only through its public surface (specs, the store, the CLI
and the REST API) and to servers only through the environment tags the process backends put
on them, so it checks the contract, not the implementation.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
AUTOTUNER = [sys.executable, "-m", "tuner.cli"]
# The tags every process-backend server carries (tuner/backends/_process.py).
STUDY_TAG = "AUTOTUNER_STUDY"
DEPLOYMENT_TAG = "AUTOTUNER_DEPLOYMENT"
TOKEN = "fault-suite-token"
# Trial failure reasons and study states of the lifecycle contract, as stored strings.
CRASHED = "crashed"
SLO_VIOLATED = "slo_violated"
INTERRUPTED = "interrupted"

T = TypeVar("T")


def spec_data(name: str, *, space: dict[str, Any], gpus: int = 2,
              faults: list[str] | None = None, concurrency: list[int] | None = None,
              requests: int = 6, **changes: Any) -> dict[str, Any]:
    """A small twin study as a dict: 1B model at 50x, tiny levels, plain grid, no extras."""
    data: dict[str, Any] = {
        "name": name,
        "model": {"name": "Llama-3.2-1B-Instruct"},
        "backend": {"kind": "twin", "gpu": "H100", "gpus": gpus, "time_scale": 50,
                    "startup_timeout_s": 60, "faults": faults or []},
        "space": space,
        "workload": {"scenarios": ["D(64,32)"], "concurrency": concurrency or [2],
                     "max_requests_per_level": requests, "max_seconds_per_level": 60},
        "objective": {"slo": {"tpot_p99_ms": 1000, "ttft_p99_ms": 10000}},
        # A plain grid, nothing on top: the suite is about the lifecycle, not the search.
        "search": {"algorithm": "grid", "prescreen": None, "confirm": {"top_k": 0},
                   "early_stopping": False},
        "trial_timeout_s": 180,
    }
    data.update(changes)
    return data


def grid_keys(data: dict[str, Any]) -> list[tuple[tuple[str, Any], ...]]:
    """The grid's configurations, each as a sorted tuple of (flag, value)."""
    from tuner.spec import spec_from_dict

    return sorted(tuple(sorted(p.items())) for p in spec_from_dict(data).grid())


def config_key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


# ---------------------------------------------------------------------------------- processes

def _env(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except (psutil.Error, OSError):
        return {}


def _live(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tagged(study_ids: set[str] | None = None) -> list[tuple[int, str, str]]:
    """Live (non-zombie) server processes: ``(pid, study, deployment)``; of these studies
    only, when given. Children of a tagged process inherit its tags: only the top one counts."""
    found: dict[int, tuple[str, str]] = {}
    parents: dict[int, int] = {}
    for process in psutil.process_iter():
        env = _env(process)
        study, name = env.get(STUDY_TAG), env.get(DEPLOYMENT_TAG)
        if study is None or name is None or (study_ids is not None and study not in study_ids):
            continue
        if not _live(process):
            continue
        found[process.pid] = (study, name)
        try:
            parents[process.pid] = process.ppid()
        except psutil.Error:
            parents[process.pid] = 0
    return sorted((pid, study, name) for pid, (study, name) in found.items()
                  if found.get(parents[pid], (None, None))[1] != name)


def kill_tagged(study_ids: set[str]) -> int:
    """SIGKILL what a failed test left of these studies' servers; how many there were."""
    left = tagged(study_ids)
    for pid, _, _ in left:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(left)


@dataclass
class ServerSampler:
    """Samples the tagged servers of some studies in a thread while a study runs.

    Attributes:
        peak: the most live servers seen at once per deployment name.
        samples: how many samples were taken.
    """

    study_ids: Callable[[], set[str]]
    interval_s: float = 0.2
    peak: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ServerSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            ids = self.study_ids()
            if not ids:
                continue
            counts: dict[str, int] = {}
            for _, _, name in tagged(ids):
                counts[name] = counts.get(name, 0) + 1
            for name, count in counts.items():
                self.peak[name] = max(self.peak.get(name, 0), count)
            self.samples += 1

    def doubled(self) -> dict[str, int]:
        """Deployments seen with more than one live server at once."""
        return {name: count for name, count in self.peak.items() if count > 1}


def server_logs(workdir: Path) -> dict[str, str]:
    """Server logs of a study's workdir, by deployment name."""
    return {p.stem: p.read_text(errors="replace")
            for p in sorted((workdir / "servers").glob("*.log"))}


def starts(log: str) -> int:
    """How many times a server log says its server was started (one ``$ argv`` line each)."""
    return sum(1 for line in log.splitlines() if line.startswith("$ "))


def first_level_slow_ttfts(trial: Any, seconds: float = 2.0) -> float | None:
    """Requests of a trial's first level whose TTFT the server measured above ``seconds`` (a
    bucket bound of SGLang's TTFT histogram); None without the server's view."""
    level = trial.levels[0] if trial.levels else None
    ttft = level.server.ttft if level is not None and level.server is not None else None
    if ttft is None:
        return None
    return float(ttft.count - ttft.counts[ttft.bounds.index(seconds)])


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL a process started with ``start_new_session`` and everything in its group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def stop_group(process: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Ctrl-C a process group, wait, then kill what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    kill_group(process)


# ------------------------------------------------------------------------------------ waiting

def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.3) -> T:
    """Poll ``check`` until it returns something truthy; return it, or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ CLI, service

def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI or service subprocess: its own home and Ray temp folder."""
    env = {**os.environ, "AUTOTUNER_HOME": str(home), "COLUMNS": "250",
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="ray-", dir="/tmp"), **extra}
    env.pop("AUTOTUNER_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def drop_env(env: dict[str, str]) -> None:
    """Remove the Ray temp folder :func:`cli_env` made (once its processes are gone)."""
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)


def start_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``autotuner ARGS`` in a session of its own (so its whole group can be killed)."""
    with log.open("ab") as out:
        return subprocess.Popen([*AUTOTUNER, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run_cli(args: list[str], env: dict[str, str],
            timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUTOTUNER, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@dataclass
class Service:
    """``autotuner serve`` in a subprocess, with a client that counts HTTP 5xx answers."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path
    errors_5xx: int = 0

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
        response = httpx.request(method, f"{self.base}{path}", headers=headers, timeout=30,
                                 **kwargs)
        if response.status_code >= 500:
            self.errors_5xx += 1
        return response

    def studies(self) -> dict[str, dict[str, Any]]:
        response = self.request("GET", "/api/studies")
        assert response.status_code == 200, response.text
        return {study["study_id"]: study for study in response.json()}

    def trials(self, study_id: str) -> list[dict[str, Any]]:
        response = self.request("GET", f"/api/studies/{study_id}/trials")
        assert response.status_code == 200, response.text
        return list(response.json())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def service(home: Path, *, gpus: int = 4, timeout: float = 90) -> Iterator[Service]:
    """``autotuner serve`` on a free port over ``home``'s store; SIGINT and wait on exit."""
    port = free_port()
    log = home / f"serve-{port}.log"
    env = cli_env(home, AUTOTUNER_TOKEN=TOKEN)
    process = start_cli(["serve", "--port", str(port), "--gpus", str(gpus)], env, log)
    live = Service(f"http://127.0.0.1:{port}", process, log)
    try:
        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the service exited:\n{live.log_tail()}")
            try:
                return live.request("GET", "/api/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, "the service to answer /api/health", interval=0.3)
        yield live
    finally:
        stop_group(process)
        drop_env(env)


def killed_driver_data() -> dict[str, Any]:
    """The 4-config study the driver-kill scenario runs, two trials at a time: slow enough
    to be caught with one trial completed and another running."""
    return spec_data("killed", gpus=2, space={"schedule_policy": ["fcfs", "lpm"],
                                              "chunked_prefill_size": [1024, 4096]},
                     faults=["slow-start=1"])


@dataclass
class KilledDriver:
    """A study whose CLI driver was SIGKILLed with a trial completed and another running."""

    study_id: str
    store_path: Path
    env: dict[str, str]


@contextmanager
def driver_killed_midway(home: Path, data: dict[str, Any]) -> Iterator[KilledDriver]:
    """``autotuner run`` on ``data``, its process group SIGKILLed once one trial completed
    while another runs (the driver, its Ray and trial actors; as a crash would). On exit,
    kills what is left of it and of the study's servers."""
    from tuner.store import open_store

    spec_path = home / "spec.json"
    spec_path.write_text(json.dumps(data))
    store_path = home / "s.db"
    env = cli_env(home)
    driver = start_cli(["--store", str(store_path), "run", str(spec_path)], env,
                       home / "driver.log")
    store = open_store(store_path)
    ids: set[str] = set()
    try:
        def midway() -> bool:
            studies = store.list_studies()
            if not studies:
                return False
            ids.add(studies[0].study_id)
            states = [t.state.value for t in store.list_trials(studies[0].study_id)]
            return "completed" in states and "running" in states

        wait_until(midway, 180, "a completed and a running trial at once", interval=0.2)
        (study_id,) = ids
        kill_group(driver)
        yield KilledDriver(study_id, store_path, env)
    finally:
        kill_group(driver)
        kill_tagged(ids)
        drop_env(env)
