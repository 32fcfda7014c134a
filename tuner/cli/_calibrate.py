"""``autotuner calibrate``: fit the twin's calibrated facts to measured studies."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

import twin
from tuner import default_store_path
from tuner.calibrate import Calibration, calibrate, write_profile
from tuner.store import open_store

__all__ = ["register"]


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the ``calibrate`` command to the CLI's subcommands."""
    cmd = add(
        "calibrate",
        help="fit a twin fact profile to studies measured on a real backend",
        description="Predict every measured level of the studies with the twin's estimator "
        "and fit factors of its calibrated facts (eta_mem, step_overhead_s, ...) to match "
        "mean TPOT, mean TTFT and output throughput; write them as a profile that "
        "backend.profile, search.prescreen.profile and the twin's --profile read.",
    )
    cmd.add_argument("studies", nargs="+", metavar="STUDY", help="measured studies (ids)")
    cmd.add_argument("-o", "--output", type=Path, required=True, help="the profile YAML to write")
    cmd.add_argument(
        "--gpu",
        default=None,
        help="GPU type the studies ran on (needed for local and ome backends)",
    )
    cmd.add_argument(
        "--max-requests",
        type=int,
        default=64,
        help="requests per estimated level, at most (default 64)",
    )
    cmd.add_argument(
        "--max-evals",
        type=int,
        default=120,
        help="estimates of all levels the fit may make (default 120)",
    )
    cmd.add_argument(
        "--max-levels",
        type=int,
        default=60,
        help="measured levels fitted to, at most (default 60)",
    )
    cmd.add_argument("--json", action="store_true", help="print the profile as JSON")
    cmd.set_defaults(command=_run)


def _run(args: argparse.Namespace) -> int:
    store = open_store(args.store or default_store_path())
    result = calibrate(
        store,
        args.studies,
        gpu=args.gpu,
        max_requests=args.max_requests,
        max_evals=args.max_evals,
        max_levels=args.max_levels,
    )
    write_profile(result, args.output)
    if args.json:
        print(json.dumps({**result.profile, "dropped": result.dropped}, indent=2))
        return 0
    console = Console()
    console.print(_table(result))
    factors = result.profile["factors"]
    assert isinstance(factors, dict)
    console.print(
        "factors: " + ", ".join(f"{name} x{f:.3f}" for name, f in factors.items()), highlight=False
    )
    held = [name for name in twin.Profile.calibrated_facts() if name not in factors]
    if held:
        console.print(
            "kept at 1, no measured level depends on them: " + ", ".join(held), highlight=False
        )
    for dropped in result.dropped:
        console.print(f"[yellow]not predictable[/] {dropped}", highlight=False)
    console.print(
        f"{result.levels} levels, {result.evaluations} evaluations in {result.seconds:.1f} s; "
        f"wrote {args.output}",
        highlight=False,
    )
    return 0


def _table(result: Calibration) -> Table:
    profile = result.profile
    before, after = profile["error_before"], profile["error_after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    table = Table(
        title=f"{profile['model']} on {profile['gpu']}: prediction error, %", title_justify="left"
    )
    for column in ("metric", "median before", "median after", "p90 before", "p90 after"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, was in before.items():
        now = after[metric]
        table.add_row(
            metric,
            f"{was['median_pct']:.1f}",
            f"{now['median_pct']:.1f}",
            f"{was['p90_pct']:.1f}",
            f"{now['p90_pct']:.1f}",
        )
    return table
