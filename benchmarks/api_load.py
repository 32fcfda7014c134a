"""Event latency of the service under load: store write to SSE client, 20 clients, 2 studies.

    .venv/bin/python benchmarks/api_load.py                  # estimate backend, ~1-2 min
    .venv/bin/python benchmarks/api_load.py --clients 50 --trials 40

Starts the service as ``autotuner serve`` does (a subprocess on a free port, temp store),
connects ``--clients`` SSE clients spread over ``--studies`` studies, submits the studies (real
driver: Ray Tune, ``estimate`` backend by default, so trials are quick and many), and for each
event a client receives computes ``received - at``, where ``at`` is the time the driver wrote
the event to the store. Prints percentiles for ``trial_finished`` (the number the target is
about: p99 under 1 s) and for every event kind, and the service's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.live import live_service  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def listen(base: str, study_id: str, samples: list[tuple[str, float, float]],
                 connected: asyncio.Event) -> None:
    """One SSE client: read the stream to its end (the study's end)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(None)) as client, \
            client.stream("GET", f"{base}/api/studies/{study_id}/events") as response:
        connected.set()
        data = None
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and data is not None:
                samples.append((data["kind"], data["at"], time.time()))
                data = None


def study_spec(quickstart: dict[str, Any], name: str, backend: str, trials: int,
               ) -> dict[str, Any]:
    spec = copy.deepcopy(quickstart)
    spec["name"] = name
    if backend == "estimate":
        spec["backend"] = {"kind": "estimate", "gpu": "H100", "gpus": 2}
        spec["space"] = {"max_running_requests": [4, 8, 16, 24, 32, 48, 64, 96],
                         "chunked_prefill_size": [512, 1024, 2048, 4096, 8192],
                         "schedule_policy": ["fcfs", "lpm"]}
    spec["search"] = {"algorithm": "random", "max_trials": trials, "seed": 1,
                      "prescreen": None, "confirm": {"top_k": 0},
                      "early_stopping": False}
    return spec


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quickstart = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    workdir = Path(tempfile.mkdtemp(prefix="autotuner-api-load-"))
    with live_service(workdir, gpus=4) as service:
        base = service.base
        async with httpx.AsyncClient(timeout=60) as client:
            # submit the studies, then connect the clients: only events written after every
            # client was connected are measured (earlier ones arrive as catch-up)
            ids = []
            for i in range(args.studies):
                body = study_spec(quickstart, f"load-{i}", args.backend, args.trials)
                response = await client.post(f"{base}/api/studies", json=body)
                response.raise_for_status()
                ids.append(response.json()["study_id"])
        samples: list[tuple[str, float, float]] = []
        connected = [asyncio.Event() for _ in range(args.clients)]
        started = time.time()
        tasks = [asyncio.create_task(listen(base, ids[i % len(ids)], samples, connected[i]))
                 for i in range(args.clients)]
        await asyncio.gather(*(event.wait() for event in connected))
        connected_at = time.time()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.timeout)
        elapsed = time.time() - started
        async with httpx.AsyncClient(timeout=60) as client:
            studies = [(await client.get(f"{base}/api/studies/{i}")).json() for i in ids]
        cpu = _cpu_seconds(service.process.pid)
    # events written before every client was connected arrive as catch-up, not live
    live = [(kind, received - at) for kind, at, received in samples if at >= connected_at]
    finished = [lag for kind, lag in live if kind == "trial_finished"]
    kinds = sorted({kind for kind, _ in live})
    return {
        "clients": args.clients, "studies": args.studies, "backend": args.backend,
        "trials_per_study": args.trials,
        "states": [s["state"] for s in studies],
        "trials": sum(s["n_trials"] for s in studies),
        "seconds": round(elapsed, 1), "service_cpu_s": cpu,
        "trial_finished": _summary(finished),
        "by_kind": {kind: _summary([lag for k, lag in live if k == kind]) for kind in kinds},
        "all_events": _summary([lag for _, lag in live]),
    }


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1),
            "p99_ms": round(percentile(values, 99) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1)}


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os

        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)
    except (OSError, IndexError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--studies", type=int, default=2)
    parser.add_argument("--trials", type=int, default=30, help="trials per study")
    parser.add_argument("--backend", choices=["estimate", "twin"], default="estimate")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['clients']} SSE clients, {result['studies']} studies "
          f"({result['backend']}, {result['trials']} trials, {result['states']}) in "
          f"{result['seconds']} s; service CPU {result['service_cpu_s']} s")
    print(f"{'event':<16} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = [("trial_finished", result["trial_finished"]), *result["by_kind"].items(),
            ("all", result["all_events"])]
    for kind, s in rows:
        if s.get("n"):
            print(f"{kind:<16} {s['n']:>6} {s['p50_ms']:>8} {s['p95_ms']:>8} "
                  f"{s['p99_ms']:>8} {s['max_ms']:>8}")
    p99 = result["trial_finished"].get("p99_ms")
    print(f"target p99 < 1000 ms for trial_finished: {'met' if p99 and p99 < 1000 else 'MISSED'}")


if __name__ == "__main__":
    main()
