"""How fast the twin's HTTP server can run (``--time-scale``) and still agree with real time.

Run from the repository root: ``python benchmarks/twin_speed.py [--write PATH]``.

Quickstart workload: Llama-3.1-8B-Instruct on H100, D(256,128), concurrency 4 and 16, 40
requests per level, loaded by the lean keep-alive client of the twin tests. Each time scale's
client-side results (latencies x S, throughputs / S) are compared with S=1 and with
``twin.estimate`` on the same workload.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script

from tests.twin import support  # noqa: E402

KEYS = ("throughput", "ttft", "tpot")


def measure(time_scale: float) -> tuple[dict[int, dict[str, float]], float]:
    """Runs the quickstart workload against a twin; returns metrics and wall seconds."""
    start = time.monotonic()
    results = support.measure_quickstart(time_scale)
    return results, time.monotonic() - start


def main() -> int:
    """Prints the comparison table; ``--write PATH`` also saves it as markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=pathlib.Path, help="save the markdown report here")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    args = parser.parse_args()
    estimated = support.estimate_quickstart()
    runs = {scale: measure(scale) for scale in args.scales}
    reference = runs[min(runs)][0]
    lines = [
        "| S | wall time | concurrency | output tok/s | mean TTFT ms | mean TPOT ms | "
        "max deviation from S=1 | max deviation from the estimator |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scale, (results, wall) in runs.items():
        for c in support.QUICKSTART_LEVELS:
            got = results[c]
            vs_real = max(abs(got[k] / reference[c][k] - 1) for k in KEYS)
            vs_est = max(abs(got[k] / estimated[c][k] - 1) for k in KEYS)
            lines.append(
                f"| {scale:g} | {wall:.1f} s | {c} | {got['throughput']:.0f} | "
                f"{got['ttft'] * 1e3:.2f} | {got['tpot'] * 1e3:.3f} | {vs_real:.1%} | "
                f"{vs_est:.1%} |"
            )
    for c in support.QUICKSTART_LEVELS:
        est = estimated[c]
        lines.append(
            f"| estimator | - | {c} | {est['throughput']:.0f} | {est['ttft'] * 1e3:.2f} | "
            f"{est['tpot'] * 1e3:.3f} | | |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
