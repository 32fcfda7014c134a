"""The largest warm-up wave a spec allows, against a closed port: time and peak memory.

    .venv/bin/python benchmarks/warmup_memory.py

10,000 requests (``workload.warmup_requests``' bound) of 30,000-token prompts: each prompt
is drawn only when its request may go, so the trial actor holds at most 256 at once.
"""

from __future__ import annotations

import resource
import socket
import time

from tuner.bench import warmup


def main() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    done = warmup.send(f"http://127.0.0.1:{port}", [30_000] * 10_000, timeout_s=300)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"requests {done.sent}, failed {done.failed}, "
          f"{time.monotonic() - started:.1f} s, peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
