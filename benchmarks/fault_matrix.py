"""The fault matrix of issue 9: each fault injected once, one row of what the tuner did.

    .venv/bin/python benchmarks/fault_matrix.py            # all rows, about 5 min on 2 cores
    .venv/bin/python benchmarks/fault_matrix.py --only crash http500

Rows (twin backend, tiny grids at --time-scale 50, the same set-up as ``tests/faults/``):

* ``crash-after=2``: the server exits mid-level; every trial must fail as ``crashed``.
* ``http500-rate=0.5``: every trial completes, unscored, as ``slo_violated``.
* ``slow-start=3``: 4 trials on 2 GPUs; every deployment started once, never two at once.
* ``cold-prefill=3``: the first real prefill takes 3 s more; the trials' warm-up wave must
  take it, so that no request of a first level waits over 2 s (server histogram).
* ``driver SIGKILL``: ``autotuner run`` killed mid-study, then ``autotuner resume``.
* ``service SIGKILL``: ``autotuner serve`` killed with 2 studies running, restarted, resumed.

For each row it prints the trials a crash-free run has vs the trials the store holds, the
servers left running (tagged processes of the row's studies), the completed trials whose
stored result changed, the HTTP 5xx answers the service gave (service row), and a verdict.
The target: 0 leaked servers, 0 changed results, recorded = expected, 0 5xx.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults.support import (  # noqa: E402
    CRASHED,
    INTERRUPTED,
    SLO_VIOLATED,
    ServerSampler,
    config_key,
    driver_killed_midway,
    first_level_slow_ttfts,
    grid_keys,
    kill_group,
    kill_tagged,
    killed_driver_data,
    run_cli,
    server_logs,
    service,
    spec_data,
    starts,
    tagged,
    wait_until,
)


@dataclass
class Row:
    """One fault's outcome."""

    fault: str
    expected: int = 0
    recorded: int = 0
    leaked: int = 0
    changed: int = 0
    errors_5xx: int | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def verdict(self) -> str:
        """``ok``, or ``FAIL:`` and every way the row missed its expected behaviour."""
        problems = list(self.problems)
        if self.recorded != self.expected:
            problems.insert(0, f"{self.recorded} trials for {self.expected}")
        if self.leaked:
            problems.append(f"{self.leaked} servers leaked")
        if self.changed:
            problems.append(f"{self.changed} completed results changed")
        if self.errors_5xx:
            problems.append(f"{self.errors_5xx} HTTP 5xx")
        return "ok" if not problems else "FAIL: " + "; ".join(dict.fromkeys(problems))


def _in_process(data: dict[str, Any], home: Path, ids: set[str],
                sampler: ServerSampler | None = None) -> tuple[str, list[Any]]:
    from tuner import create_study, run_study
    from tuner.spec import spec_from_dict
    from tuner.store import open_store

    spec = spec_from_dict(data)
    store = open_store(home / "s.db")
    study_id = create_study(spec, store=store).study_id
    ids.add(study_id)
    if sampler is not None:
        with sampler:
            run_study(spec, store=store, study_id=study_id)
    else:
        run_study(spec, store=store, study_id=study_id)
    return study_id, store.list_trials(study_id)


def _two_trials(row: Row, home: Path, ids: set[str], fault: str, **changes: Any) -> list[Any]:
    """Runs the two-config grid with ``fault`` on every server; the trials, counted in ``row``."""
    name = fault.split("=")[0]
    data = spec_data(name, space={"schedule_policy": ["fcfs", "lpm"]}, faults=[fault],
                     **changes)
    row.expected = len(grid_keys(data))
    _, trials = _in_process(data, home, ids)
    row.recorded = len(trials)
    return trials


def crash(row: Row, home: Path, ids: set[str]) -> None:
    for t in _two_trials(row, home, ids, "crash-after=2"):
        if t.state.value != "failed" or t.reason != CRASHED:
            row.problems.append(f"trial {t.number}: {t.state.value}, reason {t.reason}")
        elif "exit" not in (t.message or "").lower():
            row.problems.append(f"trial {t.number}: no exit status in the message")


def http500(row: Row, home: Path, ids: set[str]) -> None:
    for t in _two_trials(row, home, ids, "http500-rate=0.5", requests=8):
        if t.state.value != "completed" or t.score is not None or t.reason != SLO_VIOLATED:
            row.problems.append(f"trial {t.number}: {t.state.value}, score {t.score}, "
                                f"reason {t.reason}")


def cold_prefill(row: Row, home: Path, ids: set[str]) -> None:
    for t in _two_trials(row, home, ids, "cold-prefill=3"):
        slow = first_level_slow_ttfts(t)
        if t.state.value != "completed" or slow is None:
            row.problems.append(f"trial {t.number}: {t.state.value}, no server TTFT")
        elif slow:
            row.problems.append(f"trial {t.number}: {slow:.0f} first-level TTFTs over 2 s")


def slow_start(row: Row, home: Path, ids: set[str]) -> None:
    data = spec_data("slow", space={"schedule_policy": ["fcfs", "lpm"],
                                    "chunked_prefill_size": [1024, 4096]},
                     gpus=2, faults=["slow-start=3"], requests=4)
    row.expected = len(grid_keys(data))
    sampler = ServerSampler(lambda: set(ids))
    study_id, trials = _in_process(data, home, ids, sampler)
    row.recorded = len(trials)
    if sampler.doubled():
        row.problems.append(f"two live servers at once for {len(sampler.doubled())} trials")
    logs = server_logs(home / "studies" / study_id)
    twice = [name for name, log in logs.items() if starts(log) > 1]
    in_use = [name for name, log in logs.items() if "address already in use" in log.lower()]
    if twice:
        row.problems.append(f"{len(twice)} deployments started more than once")
    if in_use:
        row.problems.append(f"{len(in_use)} servers hit 'address already in use'")
    if len(logs) != len(trials):
        row.problems.append(f"{len(logs)} deployments for {len(trials)} trials")


def _fingerprint(trials: list[Any]) -> dict[str, tuple[Any, ...]]:
    return {t.trial_id: (t.score, t.levels, t.ended_at, t.params)
            for t in trials if t.state.value == "completed"}


def driver_kill(row: Row, home: Path, ids: set[str]) -> None:
    from tuner.store import open_store

    data = killed_driver_data()
    row.expected = len(grid_keys(data))
    with driver_killed_midway(home, data) as driver:
        study_id, store_path, env = driver.study_id, driver.store_path, driver.env
        ids.add(study_id)
        store = open_store(store_path)
        before = _fingerprint(store.list_trials(study_id))

        def listed_interrupted() -> bool:
            listing = run_cli(["--store", str(store_path), "list"], env, timeout=60)
            rows = [line for line in listing.stdout.splitlines() if study_id in line]
            return bool(rows) and INTERRUPTED in rows[0]

        try:
            wait_until(listed_interrupted, 20, "interrupted", interval=1)
        except AssertionError:
            row.problems.append("`list` does not show it interrupted")
        resumed = run_cli(["--store", str(store_path), "resume", study_id, "--json"], env,
                          timeout=600)
        if resumed.returncode != 0:
            row.problems.append(f"resume exited {resumed.returncode}")
        trials = [t for t in store.list_trials(study_id) if t.confirms is None]
        row.recorded = len(trials)
        after = _fingerprint(trials)
        row.changed = sum(1 for k, v in before.items() if after.get(k) != v)
        if sorted(config_key(t.params) for t in trials) != grid_keys(data):
            row.problems.append("configs not each run once")


def service_kill(row: Row, home: Path, ids: set[str]) -> None:
    specs = [spec_data(f"svc-{n}", gpus=1, faults=["slow-start=1"],
                       space={"schedule_policy": ["fcfs", "lpm"]}) for n in (1, 2)]
    row.expected = sum(len(grid_keys(data)) for data in specs)
    row.errors_5xx = 0
    study_ids: list[str] = []
    with service(home) as first:
        for data in specs:
            created = first.request("POST", "/api/studies", json=data)
            if created.status_code != 201:
                row.problems.append(f"POST /api/studies answered {created.status_code}")
                return
            study_ids.append(created.json()["study_id"])
        ids.update(study_ids)

        def running() -> bool:
            listed = first.studies()
            return all(listed[i]["state"] == "running" and any(
                t["state"] == "running" for t in first.trials(i)) for i in study_ids)

        wait_until(running, 120, "both studies running with a trial started")
        before = {i: {t["trial_id"]: (t["score"], t["levels"], t["ended_at"])
                      for t in first.trials(i) if t["state"] == "completed"}
                  for i in study_ids}
        kill_group(first.process)
        row.errors_5xx += first.errors_5xx
    with service(home) as second:
        try:
            wait_until(lambda: all(second.studies()[i]["state"] == INTERRUPTED
                                   for i in study_ids), 15, "interrupted")
        except AssertionError:
            states = [second.studies()[i]["state"] for i in study_ids]
            row.problems.append(f"after the restart: {states}, not interrupted")
        try:
            wait_until(lambda: tagged(set(study_ids)) == [], 20, "swept")
        except AssertionError:
            row.problems.append("servers not swept on start-up")
        for study_id in study_ids:
            answer = second.request("POST", f"/api/studies/{study_id}/resume")
            if answer.status_code != 202:
                row.problems.append(f"resume answered {answer.status_code}")
        try:
            wait_until(lambda: all(second.studies()[i]["state"] == "completed"
                                   for i in study_ids), 240, "completed", interval=1)
        except AssertionError:
            states = [second.studies()[i]["state"] for i in study_ids]
            row.problems.append(f"not completed: {states}")
        for study_id, data in zip(study_ids, specs, strict=True):
            trials = [t for t in second.trials(study_id) if t.get("confirms") is None]
            row.recorded += len(trials)
            after = {t["trial_id"]: (t["score"], t["levels"], t["ended_at"]) for t in trials}
            row.changed += sum(1 for k, v in before[study_id].items() if after.get(k) != v)
            if sorted(config_key(t["params"]) for t in trials) != grid_keys(data):
                row.problems.append("configs not each run once")
        row.errors_5xx += second.errors_5xx


FAULTS: dict[str, tuple[str, Callable[[Row, Path, set[str]], None]]] = {
    "crash": ("crash-after=2", crash),
    "http500": ("http500-rate=0.5", http500),
    "slow": ("slow-start=3, 2 GPUs", slow_start),
    "cold": ("cold-prefill=3", cold_prefill),
    "driver": ("driver SIGKILL + resume", driver_kill),
    "service": ("service SIGKILL + restart", service_kill),
}


def run(key: str) -> Row:
    name, body = FAULTS[key]
    row = Row(name)
    ids: set[str] = set()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        try:
            body(row, Path(tmp), ids)
        except Exception as e:  # one broken row must not hide the others
            row.problems.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        finally:
            time.sleep(1)  # a server's last teardown may still be in flight
            row.leaked = len(tagged(ids)) if ids else 0
            kill_tagged(ids)
    row.seconds = time.monotonic() - started
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(FAULTS), default=list(FAULTS))
    args = parser.parse_args()
    if any(key in ("crash", "http500", "slow", "cold") for key in args.only):
        from tuner import init_ray

        init_ray(gpus=2)  # in-process rows: a pool of 2 GPU units, as `autotuner run` has
    header = ("fault", "trials expected", "trials recorded", "servers leaked",
              "completed results changed", "5xx", "seconds", "verdict")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for key in args.only:
        row = run(key)
        cells = (row.fault, row.expected, row.recorded, row.leaked, row.changed,
                 "-" if row.errors_5xx is None else row.errors_5xx, f"{row.seconds:.0f}",
                 row.verdict())
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
