"""``python -m twin estimate``: the estimator on the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

import numpy as np

from twin import _args, _estimate, _profile, _resolve, _workload
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
    lengths = workload.add_mutually_exclusive_group(required=True)
    lengths.add_argument("--scenario", help='genai-bench traffic scenario, e.g. "D(1024,256)"')
    lengths.add_argument(
        "--bench-serving-random",
        metavar="IN,OUT[,RATIO]",
        help="replay sglang.bench_serving --dataset-name random --random-input-len IN "
        "--random-output-len OUT [--random-range-ratio RATIO] at its default --seed 1: its "
        "very prompts, each once, in order; --max-requests or --num-prompts is its "
        "--num-prompts (with --concurrency and --spawn-rate inf for --max-concurrency)",
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


def _replay(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    # --bench-serving-random IN,OUT[,RATIO] as simulate's in-order lengths.
    fields = args.bench_serving_random.split(",")
    count = args.num_prompts or args.max_requests
    try:
        numbers = [int(fields[0]), int(fields[1])] if len(fields) in (2, 3) else []
        ratio = float(fields[2]) if len(fields) == 3 else 0.0
    except ValueError:
        numbers = []
    if not numbers:
        raise ValueError(f"--bench-serving-random: {args.bench_serving_random!r} is not "
                         "IN,OUT or IN,OUT,RATIO (e.g. 1000,1000)")
    if count is None:
        raise ValueError("--bench-serving-random: give bench_serving's --num-prompts as "
                         "--max-requests (or --num-prompts for all at once)")
    return _workload.bench_serving_random_lengths(numbers[0], numbers[1], count, ratio)


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
        replay = _replay(args) if args.bench_serving_random else None
        profile = _profile.load_profile(args.profile) if args.profile else None
        with _profile.using_profile(profile) if profile else contextlib.nullcontext():
            config = _resolve.resolve(args)
            result = _estimate.simulate(
                config,
                scenario=args.scenario or f"bench_serving random {args.bench_serving_random}",
                seed=args.seed,
                lengths=replay,
                in_order=replay is not None,
                **load,
            )
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
