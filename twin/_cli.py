"""``python -m twin estimate``: the estimator on the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

from twin import _args, _estimate, _profile, _resolve
from twin._errors import StartupError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twin", description="SGLang digital twin tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    estimate = commands.add_parser(
        "estimate",
        parents=[_args.build_parser(add_help=False)],
        help="estimate genai-bench results without starting a server",
        description="Runs the twin's scheduler model in virtual time and prints "
        "genai-bench-shaped aggregated metrics. Takes launch_server's flags.",
    )
    workload = estimate.add_argument_group("workload")
    workload.add_argument(
        "--scenario", required=True, help='genai-bench traffic scenario, e.g. "D(1024,256)"'
    )
    mode = workload.add_mutually_exclusive_group(required=True)
    mode.add_argument("--concurrency", type=int, help="closed-loop clients")
    mode.add_argument("--request-rate", type=float, help="arrivals per second (Poisson)")
    mode.add_argument("--num-prompts", type=int, help="requests all sent at time 0")
    workload.add_argument(
        "--spawn-rate",
        type=float,
        default=None,
        help="with --concurrency: users started per second, floor(rate) at a time as "
        "genai-bench's locust does (default: the concurrency, so all at once, as genai-bench "
        "and, with inf, bench_serving --max-concurrency)",
    )
    workload.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        help="with --request-rate: gamma shape of the gaps (1: Poisson; bench_serving's)",
    )
    workload.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="requests to complete (concurrency) or send (request rate)",
    )
    workload.add_argument("--seed", type=int, default=0, help="random seed")
    workload.add_argument("--json", action="store_true", help="print the full JSON result")
    return parser


def _summary(metrics: object) -> str:
    assert isinstance(metrics, dict)
    stats = metrics["stats"]
    assert isinstance(stats, dict)
    lines = [
        f"scenario {metrics['scenario']}, {metrics['num_requests']} requests "
        f"({metrics['num_error_requests']} errors) in {metrics['run_duration']:.2f} s",
        f"output throughput  {metrics['mean_output_throughput_tokens_per_s']:10.1f} tok/s",
        f"input throughput   {metrics['mean_input_throughput_tokens_per_s']:10.1f} tok/s",
        f"requests/s         {metrics['requests_per_second']:10.3f}",
    ]
    for name in ("ttft", "tpot", "e2e_latency"):
        stat = stats[name]
        if stat["mean"] is not None:
            lines.append(
                f"{name:12s} mean {stat['mean'] * 1e3:9.2f} ms   "
                f"p50 {stat['p50'] * 1e3:9.2f} ms   p99 {stat['p99'] * 1e3:9.2f} ms"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Exit status: 0 on success, 1 when the configuration would fail to start (the
        message is printed to stderr); bad arguments exit with 2 through argparse.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _args.validate(args)
        load = {
            "concurrency": args.concurrency,
            "request_rate": args.request_rate,
            "num_prompts": args.num_prompts,
            "max_requests": args.max_requests,
            "spawn_rate": args.spawn_rate,
            "burstiness": args.burstiness,
        }
        _estimate.check_load(**load)
        profile = _profile.load_profile(args.profile) if args.profile else None
        with _profile.using_profile(profile) if profile else contextlib.nullcontext():
            config = _resolve.resolve(args)
            result = _estimate.simulate(config, scenario=args.scenario, seed=args.seed, **load)
    except StartupError as e:
        print(f"{e}", file=sys.stderr)
        return 1
    except ValueError as e:
        parser.error(str(e))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_summary(result["aggregated_metrics"]))
    return 0
