"""``autotuner plan``: the cheapest GPUs, layout and flags that serve a load within an SLO."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tuner import default_store_path
from tuner.exceptions import SpecError
from tuner.plan import Candidate, PlanResult, Verified, load_plan, plan, plot, verify
from tuner.store import Store, open_store

__all__ = ["register"]


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the ``plan`` command to the CLI's subcommands."""
    cmd = add("plan", help="plan capacity: cheapest GPUs, layout and flags meeting an SLO")
    cmd.add_argument("plan", type=Path, help="plan spec (YAML or JSON)")
    cmd.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    cmd.add_argument("--csv", type=Path, metavar="FILE", help="write every layout to a CSV file")
    cmd.add_argument("--plot", type=Path, metavar="FILE.png",
                     help="draw cost per million output tokens against TTFT p99, per layout")
    cmd.add_argument("--top", type=int, default=10, help="plans shown (default 10)")
    cmd.add_argument("--verify", type=int, default=0, metavar="N",
                     help="measure the N best layouts (one study each, on the plan's "
                     "verify.backend, the twin by default) and show predicted vs measured")
    cmd.set_defaults(command=_run)


def _run(args: argparse.Namespace) -> int:
    if args.verify < 0:
        raise SpecError(f"--verify {args.verify}: give how many of the best layouts to "
                        "measure (0 or more)", [("--verify", "a count of 0 or more")])
    result = plan(load_plan(args.plan))
    if args.csv:
        _write_csv(args.csv, result)
    if args.plot:
        plot(args.plot, result)
    checked = verify(result, args.verify, store=_store(args)) if args.verify else []
    if args.json:
        print(json.dumps({**result.to_dict(), "verified": [v.to_dict() for v in checked]},
                         indent=2))
        return 0 if result.best else 1
    console = Console()
    console.print(_ranked_table(result, args.top))
    console.print(_rejected_table(result))
    console.print(
        f"{result.estimates} estimates, {len(result.ranked) + len(result.rejected)} layouts "
        f"in {result.seconds:.1f} s", highlight=False)
    best = result.best
    if best is None:
        console.print("[red]no layout meets the SLO[/] within gpus.max_gpus; see the reasons")
        return 1
    console.print(f"cheapest: [bold green]{best.gpus} x {best.gpu} as {best.layout}[/] "
                  f"{best.flags_text} at ${best.usd_per_hour:.2f}/h", highlight=False)
    if checked:
        console.print(_verified_table(checked))
    if args.plot:
        console.print(f"wrote {args.plot}", highlight=False)
    return 0


def _store(args: argparse.Namespace) -> Store:
    return open_store(args.store or default_store_path())


def _verified_table(checked: list[Verified]) -> Table:
    table = Table(title="the best layouts measured: planned (at the target load) / predicted "
                  "/ measured (one replica, closed loop)", title_justify="left")
    for column in ("#", "layout", "users", "TTFT p99 ms", "TPOT p99 ms", "goodput tok/s",
                   "measured", "study"):
        table.add_column(column, justify="left" if column in ("layout", "measured") else
                         "right")
    for v in checked:
        c = v.candidate
        cells = [_three(v, name) for name in ("ttft_p99_ms", "tpot_p99_ms", "goodput")]
        verdict = ("meets the SLO" if v.meets_slo else v.reason or "") if v.measured \
            else v.reason or ""
        table.add_row(str(v.rank), f"{c.gpus} x {c.gpu} {c.layout} {c.flags_text}",
                      str(v.users), *cells, verdict, v.study_id or "-")
    return table


def _three(v: Verified, name: str) -> str:
    planned, predicted = v.planned[name], v.predicted[name]
    measured = "-" if v.measured is None else f"{v.measured[name]:,.0f}"
    error = v.error(name)
    return (f"{planned:,.0f} / {predicted:,.0f} / {measured}"
            + ("" if error is None else f" ({error:+.0%})"))


def _ranked_table(result: PlanResult, top: int) -> Table:
    table = Table(title="plans that meet the SLO, cheapest first", title_justify="left")
    for column in ("#", "GPU", "GPUs", "layout", "flags", "goodput tok/s", "TTFT p50/p99 ms",
                   "TPOT p50/p99 ms", "SLO margin", "$/hour", "$/M out tok"):
        table.add_column(column, justify="right" if column not in ("GPU", "flags") else "left")
    for i, c in enumerate(result.ranked[:top], 1):
        m = c.metrics
        table.add_row(
            str(i), c.gpu, str(c.gpus), c.layout, c.flags_text, f"{m['goodput']:,.0f}",
            f"{m['ttft_p50_ms']:,.0f} / {m['ttft_p99_ms']:,.0f}",
            f"{m['tpot_p50_ms']:.1f} / {m['tpot_p99_ms']:.1f}", f"{c.margin:.0%}",
            f"{c.usd_per_hour:.2f}", f"{c.usd_per_mtok:.3f}" if c.usd_per_mtok else "-",
        )
    return table


def _rejected_table(result: PlanResult) -> Table:
    table = Table(title="why the other layouts lost", title_justify="left")
    for column in ("reason", "GPU", "tp", "layouts", "from $/hour", "cheapest one"):
        table.add_column(column)
    for kind, group in result.why_rejected().items():
        seen: dict[tuple[str, int], list[Candidate]] = {}
        for c in group:
            seen.setdefault((c.gpu, c.tp), []).append(c)
        for (gpu, tp), members in seen.items():
            first = members[0]
            detail = (first.reason or "").removeprefix(kind).lstrip(": ")
            table.add_row(kind, gpu, str(tp), str(len(members)),
                          f"{first.usd_per_hour:.2f}",
                          f"{first.layout} {first.flags_text}: {detail[:90]}")
    return table


def _write_csv(path: Path, result: PlanResult) -> None:
    rows = [c.to_dict() for c in result.ranked] + result.to_dict()["rejected"]
    metrics = ("goodput", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
               "e2e_p99_ms")
    columns = ["gpu", "gpus", "tp_size", "replicas", "flags", "meets_slo", "reason",
               *metrics, "slo_margin", "usd_per_hour", "usd_per_mtok"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            flat = {k: row[k] for k in columns if k in row}
            flat["flags"] = json.dumps(row["flags"])
            flat.update({k: row["metrics"].get(k) for k in metrics})
            writer.writerow(flat)
