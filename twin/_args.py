"""The launch_server command line: one parser and one validator for the CLI and the Python API.

Flag names, aliases, defaults and choices follow ``sglang.launch_server`` 0.5.5. ``None``
defaults mean "auto": they are resolved from the GPU and model like SGLang does (see
``_resolve``). The twin-only flags (``--gpu``, ``--num-gpus``, ``--time-scale``,
``--startup-time-scale``, ``--fault``) come last.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import NoReturn

from twin import _facts, _faults

SCHEDULE_POLICIES = ("lpm", "random", "fcfs", "dfs-weight", "lof", "priority")
KV_CACHE_DTYPES = ("auto", "fp8_e5m2", "fp8_e4m3")
# Online fp8 weight quantization; checkpoint formats (awq, gptq, ...) need real weights.
QUANTIZATIONS = ("fp8", "w8a8_fp8")
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Flags of the twin, not of SGLang: a tuner must drop them when it launches the real server.
TWIN_ONLY_DESTS = frozenset({"gpu", "num_gpus", "time_scale", "startup_time_scale", "fault"})


class _RaisingParser(argparse.ArgumentParser):
    """A parser whose errors raise ``ValueError`` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def build_parser(
    prog: str = "python -m twin.launch_server",
    *,
    add_help: bool = True,
    raise_errors: bool = False,
) -> argparse.ArgumentParser:
    """Builds the launch_server argument parser.

    Args:
        prog: Program name for usage and error messages.
        add_help: Whether to add ``-h/--help`` (off when used as a parent parser).
        raise_errors: Raise ``ValueError`` on errors instead of exiting with status 2.

    Returns:
        The parser.
    """
    cls = _RaisingParser if raise_errors else argparse.ArgumentParser
    parser = cls(
        prog=prog,
        add_help=add_help,
        description="SGLang digital twin: sglang.launch_server's flags on a CPU.",
    )
    add = parser.add_argument
    add(
        "--model-path",
        "--model",
        dest="model_path",
        required=True,
        help="catalog name, org/Name hub id (matched on Name) or directory with config.json",
    )
    add("--tokenizer-path", default=None, help="tokenizer directory (default: the model's)")
    add("--served-model-name", default=None, help="model name served by the API")
    add("--host", default="127.0.0.1", help="HTTP host")
    add("--port", type=int, default=30000, help="HTTP port")
    add("--dtype", default="auto", choices=DTYPES, help="weight and activation dtype")
    add("--kv-cache-dtype", default="auto", choices=KV_CACHE_DTYPES, help="KV cache dtype")
    add(
        "--quantization",
        default=None,
        choices=QUANTIZATIONS,
        help="fp8 weights: half the weight bytes, fp8 GEMM peak where the GPU has one",
    )
    add("--context-length", type=int, default=None, help="max context (default: the model's)")
    add("--trust-remote-code", action="store_true", help="accepted for compatibility")
    add(
        "--mem-fraction-static",
        type=float,
        default=None,
        help="fraction of GPU memory for weights and KV pool (default: auto)",
    )
    add("--max-running-requests", type=int, default=None, help="max running requests")
    add("--max-total-tokens", type=int, default=None, help="cap of the KV pool in tokens")
    add(
        "--chunked-prefill-size",
        type=int,
        default=None,
        help="max tokens per prefill chunk, -1 disables (default: auto)",
    )
    add("--max-prefill-tokens", type=int, default=16384, help="token budget of a prefill batch")
    add("--schedule-policy", default="fcfs", choices=SCHEDULE_POLICIES, help="queue order")
    add(
        "--schedule-conservativeness",
        type=float,
        default=1.0,
        help="scales the initial new-token ratio of admission",
    )
    add(
        "--tensor-parallel-size",
        "--tp-size",
        "--tp",
        dest="tp_size",
        type=int,
        default=1,
        help="tensor parallel size",
    )
    add(
        "--data-parallel-size",
        "--dp-size",
        dest="dp_size",
        type=int,
        default=1,
        help="data parallel replicas behind round-robin",
    )
    add("--stream-interval", type=int, default=1, help="stream every N output tokens")
    add("--random-seed", type=int, default=None, help="random seed")
    add("--log-level", default="info", choices=LOG_LEVELS, help="log level")
    add(
        "--decode-log-interval",
        type=int,
        default=int(_facts.fact("decode_log_interval")),
        help="decode steps between 'Decode batch' log lines",
    )
    add("--enable-metrics", action="store_true", help="serve Prometheus metrics at /metrics")
    # Accepted for OME's runtimes, which pass it; it changes logging only, not performance.
    add("--log-requests", action="store_true", help="log request metadata (no effect)")
    add(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (not on /health*, /metrics)",
    )
    add(
        "--cuda-graph-max-bs",
        type=int,
        default=None,
        help="largest decode batch replayed as a CUDA graph (default: auto)",
    )
    add("--disable-cuda-graph", action="store_true", help="run every batch eagerly")
    add("--enable-torch-compile", action="store_true", help="torch.compile small batches")
    add("--torch-compile-max-bs", type=int, default=32, help="largest compiled batch")
    add("--disable-radix-cache", action="store_true", help="turn prefix caching off")
    add(
        "--enable-mixed-chunk",
        action="store_true",
        help="put running decode requests into prefill batches",
    )
    add(
        "--disable-overlap-schedule",
        action="store_true",
        help="do not hide scheduler CPU time behind GPU time",
    )
    twin = parser.add_argument_group("twin-only options")
    twin.add_argument(
        "--gpu", default="H100", choices=tuple(_facts.GPU_TABLE), help="simulated GPU model"
    )
    twin.add_argument("--num-gpus", type=int, default=8, help="GPUs on the simulated host")
    twin.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="run S times faster than real time (clients multiply latencies by S)",
    )
    twin.add_argument(
        "--startup-time-scale",
        type=float,
        default=None,
        help="divide the simulated start-up time by this (default: --time-scale)",
    )
    twin.add_argument(
        "--fault", action="append", type=_faults.parse_fault, default=None, help=_faults.FAULT_HELP
    )
    return parser


def validate(args: argparse.Namespace) -> None:
    """Checks flag values argparse cannot check alone.

    Args:
        args: Parsed arguments.

    Raises:
        ValueError: A value is out of range; the message starts with the flag's name.
    """
    checks: list[tuple[str, bool, str]] = [
        ("--port", 0 < args.port < 65536, "must be in 1..65535"),
        (
            "--mem-fraction-static",
            args.mem_fraction_static is None or 0.0 < args.mem_fraction_static < 1.0,
            "must be in (0, 1)",
        ),
        (
            "--max-running-requests",
            args.max_running_requests is None or args.max_running_requests >= 1,
            "must be >= 1",
        ),
        (
            "--max-total-tokens",
            args.max_total_tokens is None or args.max_total_tokens >= 1,
            "must be >= 1",
        ),
        (
            "--chunked-prefill-size",
            args.chunked_prefill_size is None
            or args.chunked_prefill_size == -1
            or args.chunked_prefill_size >= 1,
            "must be -1 or >= 1",
        ),
        ("--max-prefill-tokens", args.max_prefill_tokens >= 1, "must be >= 1"),
        ("--schedule-conservativeness", args.schedule_conservativeness > 0, "must be > 0"),
        ("--tensor-parallel-size", args.tp_size >= 1, "must be >= 1"),
        ("--data-parallel-size", args.dp_size >= 1, "must be >= 1"),
        ("--stream-interval", args.stream_interval >= 1, "must be >= 1"),
        (
            "--context-length",
            args.context_length is None or args.context_length >= 2,
            "must be >= 2",
        ),
        ("--decode-log-interval", args.decode_log_interval >= 1, "must be >= 1"),
        (
            "--cuda-graph-max-bs",
            args.cuda_graph_max_bs is None or args.cuda_graph_max_bs >= 0,
            "must be >= 0",
        ),
        ("--torch-compile-max-bs", args.torch_compile_max_bs >= 1, "must be >= 1"),
        ("--num-gpus", args.num_gpus >= 1, "must be >= 1"),
        ("--time-scale", args.time_scale > 0, "must be > 0"),
        (
            "--startup-time-scale",
            args.startup_time_scale is None or args.startup_time_scale > 0,
            "must be > 0",
        ),
    ]
    for flag, ok, rule in checks:
        if not ok:
            raise ValueError(f"{flag} {rule}")


def parse_argv(
    argv: Sequence[str] | None, prog: str = "python -m twin.launch_server"
) -> argparse.Namespace:
    """Parses and validates a launch_server command line; exits with status 2 on errors.

    Args:
        argv: Arguments without the program name (``None``: ``sys.argv[1:]``).
        prog: Program name for messages.

    Returns:
        The parsed arguments.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        validate(args)
    except ValueError as e:
        parser.error(str(e))
    return args


def mapping_to_argv(
    server_args: Mapping[str, object], parser: argparse.ArgumentParser | None = None
) -> list[str]:
    """Turns ``{dest: value}`` into launch_server arguments.

    ``None`` values and ``False`` switches are left out, so they keep their defaults.

    Args:
        server_args: Flag values keyed by dest name (``tp_size``); dashes are accepted too.
        parser: The parser whose flags to use (default: a new launch_server parser).

    Returns:
        The argument list, e.g. ``["--tensor-parallel-size", "2"]``.

    Raises:
        ValueError: A key is not a launch_server flag.
    """
    parser = parser or build_parser()
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    argv: list[str] = []
    for key, value in server_args.items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None or dest == "help":
            raise ValueError(
                f"unknown server arg {key!r}; use launch_server dest names "
                "such as 'tp_size' or 'mem_fraction_static'"
            )
        flag = action.option_strings[0]
        if value is None or value is False:
            continue
        if action.nargs == 0:
            if value is not True:
                raise ValueError(f"{flag} is a switch; pass True or False, not {value!r}")
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def parse_mapping(server_args: Mapping[str, object], **twin_args: object) -> argparse.Namespace:
    """Parses and validates server args given as a mapping, with the CLI's parser.

    Args:
        server_args: Flag values keyed by dest name.
        **twin_args: Twin-only values (``gpu``, ``num_gpus``) given as keywords.

    Returns:
        The parsed arguments.

    Raises:
        ValueError: Unknown key, bad value, or a twin-only key inside ``server_args``.
    """
    clash = TWIN_ONLY_DESTS.intersection(k.replace("-", "_") for k in server_args) & set(twin_args)
    if clash:
        raise ValueError(
            f"pass {', '.join(sorted(clash))} as keyword argument, not in server_args"
        )
    parser = build_parser(raise_errors=True)
    args = parser.parse_args(mapping_to_argv({**server_args, **twin_args}, parser))
    validate(args)
    return args
