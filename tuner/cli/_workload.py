"""``autotuner workload from-log``: a workload fitted to a request log, and what it found."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tuner.workload import (
    FIELDS,
    PERCENTILES,
    TOLERANCE,
    FromLog,
    from_log,
    histogram_lines,
    percentile_table,
)

__all__ = ["register"]

# Bad rows printed one by one; all of them are counted, and listed in a file beside the YAML.
_SHOWN = 20


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the ``workload`` command group to the CLI's subcommands."""
    group = add("workload", help="workloads from real traffic")
    commands = group.add_subparsers(dest="workload_command", required=True, metavar="COMMAND")
    log = commands.add_parser(
        "from-log",
        help="fit a workload to a request log (CSV or JSON lines); nothing leaves this host",
        description="Read a request log (CSV with a header, or JSON lines) with token counts "
        "(input_tokens/prompt_tokens, output_tokens/completion_tokens) or texts (prompt, "
        "completion: counted with the tokenizer), and optional start times with latencies "
        "or end times; write a workload YAML. Bad rows are counted and listed by line.",
    )
    log.add_argument("log", type=Path, help="the request log")
    log.add_argument("-o", "--output", type=Path, default=Path("workload.yaml"),
                     help="the workload YAML to write (default: workload.yaml); a prompt "
                     "file, a PNG and a list of bad rows go beside it")
    log.add_argument("--tokenizer", default=None, metavar="DIR",
                     help="local tokenizer directory to count texts with (default: the "
                     "twin's bundled tokenizer; nothing is downloaded)")
    log.add_argument("--scenario", action="store_true",
                     help="fit a D/N/U scenario even when the log has prompts (default: "
                     "the prompts become the workload's dataset)")
    for name in FIELDS:
        log.add_argument(f"--{name.replace('_', '-')}-field", dest=f"field_{name}",
                         metavar="NAME", default=None,
                         help=f"the log's name for {name} (default: one of "
                         f"{', '.join(FIELDS[name])})")
    log.set_defaults(command=_from_log)


def _from_log(args: argparse.Namespace) -> int:
    names = {name: getattr(args, f"field_{name}") for name in FIELDS
             if getattr(args, f"field_{name}")}
    result = from_log(args.log, args.output, names=names, tokenizer=args.tokenizer,
                      use_prompts=not args.scenario)
    for line in _summary(args.log, result):
        print(line)
    return 0


def _summary(path: Path, result: FromLog) -> list[str]:
    log = result.log
    lines = [f"{path}: {log.rows:,} rows, {len(result.inputs):,} requests, "
             f"{len(log.bad):,} bad rows left out"]
    if log.bad:
        listing = result.written.with_name(result.written.stem + ".bad-rows.txt")
        listing.write_text("".join(f"line {n}: {why}\n" for n, why in log.bad))
        for reason, count in Counter(_kind(why) for _, why in log.bad).most_common():
            lines.append(f"  {count:,} x {reason}")
        lines += [f"  line {n}: {why}" for n, why in log.bad[:_SHOWN]]
        if len(log.bad) > _SHOWN:
            lines.append(f"  ... all {len(log.bad):,} in {listing}")
    lines.append("fields: " + ", ".join(f"{k}={v}" for k, v in log.fields.items()))
    lines += histogram_lines("input lengths", result.inputs.tolist())
    lines += histogram_lines("output lengths", result.outputs.tolist())
    header = "".join(f"{'p' + str(p):>9}" for p in PERCENTILES)
    lines.append(f"{'percentiles (tokens)':<22}{header}")
    rows = (("input, log", percentile_table(result.inputs)),
            ("input, workload", result.expected["input"]),
            ("output, log", percentile_table(result.outputs)),
            ("output, workload", result.expected["output"]))
    for label, values in rows:
        cells = "".join(f"{v:>9.0f}" for v in values) if values else "  the server's own stops"
        lines.append(f"{label:<22}{cells}")
    if result.fit is not None:
        fit = result.fit
        verdict = "within" if fit.error <= TOLERANCE else "WARNING: off by up to"
        lines.append(f"scenario: {fit.scenario}, {verdict} {fit.error:.1%} of the log's "
                     "length percentiles")
        if fit.error > TOLERANCE:
            lines.append("  no D, N or U scenario follows this log's lengths; a log with "
                         "prompts gives an exact dataset instead")
    if result.dataset is not None:
        lines.append(f"dataset: {len(log.prompts):,} prompts in {result.dataset} (outputs: the "
                     "server stops each by itself, as genai-bench's dataset mode sends no "
                     "max_tokens)")
    ladder = result.workload.get("concurrency")
    lines.append(f"concurrency ladder: {ladder if ladder else '[8, 32, 64] (default)'}, from "
                 f"{result.ladder_from}")
    lines.append(f"wrote {result.written} and {result.png}")
    return lines


def _kind(reason: str) -> str:
    # "input_tokens is 'x', not a number" and "... is 'y', ..." count as one kind of problem.
    head, _, tail = reason.partition(" is ")
    return f"{head} is {tail.split(', ', 1)[-1]}" if tail else reason
