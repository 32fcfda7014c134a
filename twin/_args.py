"""The launch_server command line: one parser and one validator for the CLI and the Python API.

Every flag of ``sglang.launch_server`` 0.5.5 is accepted. The flags the twin models are
declared here by hand, with SGLang's names, aliases and defaults and the choices of SGLang's
flag table; ``None`` defaults mean "auto": they are resolved from the GPU and model like
SGLang does (see ``_resolve``). The other flags are added from the flag table the tuner
generates from SGLang's source (``tuner/serverargs/tables``, read as data): accepted, checked
for type and choices, and reported by :func:`not_modelled` when set. The twin-only flags
(``--gpu``, ``--num-gpus``, ``--time-scale``, ``--startup-time-scale``, ``--fault``,
``--profile``, ``--speculative-accept-rate``) come last.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from twin import _facts, _faults, _gpus, _parallel, _profile, _speculative

# SGLang's flag tables, one JSON file per version, next to the tuner that writes them.
_TABLES = pathlib.Path(__file__).resolve().parents[1] / "tuner" / "serverargs" / "tables"

# GPUs of the table (``_gpus.GPU_TABLE``) with compute capability 10.x: the only ones where
# SGLang's trtllm_mha attention backend runs.
SM100_GPUS = frozenset({"B200"})

# Flags of the twin, not of SGLang: a tuner must drop them when it launches the real server.
TWIN_ONLY_DESTS = frozenset(
    {"gpu", "num_gpus", "time_scale", "startup_time_scale", "fault", "profile",
     "speculative_accept_rate"}
)


@functools.cache
def sglang_flags() -> dict[str, dict[str, Any]]:
    """The rows of SGLang's flag table for the twin's version, by flag name."""
    from twin._resolve import VERSION

    rows = json.loads((_TABLES / f"sglang-{VERSION}.json").read_text())["flags"]
    return {row["name"]: row for row in rows}


def _choices(name: str) -> list[Any] | None:
    choices: list[Any] | None = sglang_flags()[name]["choices"]
    return choices


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
    add("--dtype", default="auto", choices=_choices("dtype"), help="weight and activation dtype")
    add(
        "--kv-cache-dtype",
        default="auto",
        choices=_choices("kv_cache_dtype"),
        help="KV cache dtype (every value but auto is simulated as one byte per element)",
    )
    add(
        "--quantization",
        default=None,
        choices=_choices("quantization"),
        help="quantized weights: one byte per decoder weight, fp8 GEMM peak where the GPU has one",
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
    add(
        "--schedule-policy",
        default="fcfs",
        choices=_choices("schedule_policy"),
        help="queue order",
    )
    add(
        "--schedule-conservativeness",
        type=float,
        default=1.0,
        help="scales the initial new-token ratio of admission",
    )
    add(
        "--tensor-parallel-size",
        "--tp-size",
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
        help="data parallel replicas behind round-robin (attention ranks with "
        "--enable-dp-attention)",
    )
    _parallel.add_flags(parser, _choices)
    _speculative.add_flags(parser, _choices)
    add("--stream-interval", type=int, default=1, help="stream every N output tokens")
    add("--random-seed", type=int, default=None, help="random seed")
    add("--log-level", default="info", help="log level: debug, info, warning, error, critical")
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
    add(
        "--enable-piecewise-cuda-graph",
        action="store_true",
        help="replay prefill forwards of up to --piecewise-cuda-graph-max-tokens as graphs",
    )
    add(
        "--piecewise-cuda-graph-max-tokens",
        type=int,
        default=4096,
        help="largest prefill forward replayed as a piecewise CUDA graph",
    )
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
    _add_unmodelled(parser)
    twin = parser.add_argument_group("twin-only options")
    twin.add_argument(
        "--gpu", default="H100", choices=tuple(_gpus.GPU_TABLE), help="simulated GPU model"
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
    _speculative.add_twin_flag(twin)
    twin.add_argument(
        "--profile",
        type=_check_profile,
        default=None,
        metavar="FILE",
        help="fact profile (YAML) whose factors scale the calibrated facts, as written by "
        "autotuner calibrate",
    )
    return parser


def _check_profile(path: str) -> str:
    # argparse ``type``: a bad file fails at parse time with the field named; the server
    # reads it again when it starts (the namespace keeps the path, printable and picklable).
    try:
        _profile.load_profile(path)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return path


_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str}
_UNMODELLED = "SGLang options the twin accepts but does not model"


def _help(row: Mapping[str, Any]) -> str:
    # argparse formats help with %: SGLang's text may hold a literal one.
    return str(row["help"]).replace("%", "%%")


def _add_unmodelled(parser: argparse.ArgumentParser) -> None:
    """SGLang's flags the twin does not model: accepted with SGLang's type and choices."""
    group = parser.add_argument_group(_UNMODELLED)
    taken = parser._option_string_actions
    dests = {action.dest for action in parser._actions}
    for name, row in sglang_flags().items():
        options = [o for o in row["options"] if o not in taken]
        if name in dests or not options:
            continue
        if row["type"] == "bool":
            group.add_argument(*options, dest=name, action="store_true", help=_help(row))
            continue
        group.add_argument(
            *options,
            dest=name,
            type=_TYPES[row["type"]],
            default=row["default"],
            choices=row["choices"],
            nargs=row["nargs"],
            help=_help(row),
        )


@functools.cache
def modelled() -> frozenset[str]:
    """SGLang flags the twin models: those declared by hand above."""
    parser = build_parser(add_help=False)
    unmodelled = {
        action.dest
        for group in parser._action_groups
        if group.title == _UNMODELLED
        for action in group._group_actions
    }
    return frozenset(a.dest for a in parser._actions if a.dest in sglang_flags()) - unmodelled


def not_modelled(args: argparse.Namespace) -> list[str]:
    """The flags set away from SGLang's default that the twin accepts but does not model."""
    rows = sglang_flags()
    unset = (None, False)  # by identity: 0 is a value someone set
    return sorted(
        name
        for name in rows.keys() - modelled()
        if not any(getattr(args, name, None) is v for v in unset)
        and getattr(args, name) != rows[name]["default"]
    )


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
            args.cuda_graph_max_bs is None
            or args.cuda_graph_max_bs >= 1
            or (args.disable_cuda_graph and args.cuda_graph_max_bs >= 0),
            # SGLang's capture list comes out empty and max([]) raises at start-up.
            "must be >= 1 unless --disable-cuda-graph",
        ),
        (
            "--log-level",
            args.log_level.upper() in logging.getLevelNamesMapping(),
            "must be debug, info, warning, error or critical",
        ),
        ("--page-size", args.page_size is None or args.page_size >= 1, "must be >= 1"),
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
    _check_startup_rules(args)


def _check_startup_rules(args: argparse.Namespace) -> None:
    """SGLang 0.5.5's refusals of flag combinations in ``ServerArgs.__post_init__``."""
    from twin._resolve import memory_tier

    chunk = args.chunked_prefill_size
    if chunk is None:
        chunk = memory_tier(_gpus.GPU_TABLE[args.gpu].memory_mib).chunked_prefill_size
    _parallel.check_args(args)
    page = args.page_size or 1
    if chunk > 0 and args.disaggregation_mode != "decode" and chunk % page:
        raise ValueError(
            f"AssertionError: chunked_prefill_size must be divisible by page_size "
            f"(--chunked-prefill-size {chunk}, --page-size {page})"
        )
    backends = (
        args.attention_backend,
        args.prefill_attention_backend,
        args.decode_attention_backend,
    )
    if "trtllm_mha" in backends and args.gpu not in SM100_GPUS:
        raise ValueError(
            "--attention-backend: TRTLLM MHA backend is only supported on Blackwell GPUs "
            f"(SM100) such as {', '.join(sorted(SM100_GPUS))}, not --gpu {args.gpu}; use a "
            "different backend"
        )


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


@functools.cache
def _mapping_parser() -> argparse.ArgumentParser:
    # Built once: the estimator parses a mapping per estimate, and parsing does not change
    # the parser.
    return build_parser(raise_errors=True)


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
    parser = _mapping_parser()
    args = parser.parse_args(mapping_to_argv({**server_args, **twin_args}, parser))
    validate(args)
    return args
