"""``autotuner flags``: SGLang's launch_server flags of a version, and which the twin models."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from tuner import serverargs
from tuner.exceptions import SpecError

__all__ = ["register"]


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the ``flags`` command to the CLI's subcommands."""
    flags = add("flags", help="list SGLang's launch_server flags and which the twin models")
    flags.add_argument(
        "--version",
        default=None,
        help=f"SGLang version, one of {', '.join(serverargs.versions())} "
        "(default: the twin's)",
    )
    flags.add_argument(
        "--search", metavar="WORD", help="only flags whose name (dashes or underscores) or "
        "help has WORD"
    )
    flags.add_argument("--json", action="store_true", help="print JSON on stdout")
    flags.set_defaults(command=_flags)


def _rows(version: str | None, word: str | None) -> list[dict[str, Any]]:
    try:
        table = serverargs.table(version)
    except ValueError as e:
        raise SpecError(f"--version: {e}") from e
    modelled = serverargs.twin_modelled() if table.version == serverargs.default_version() \
        else frozenset()
    needle = (word or "").lower()
    return [
        {
            "name": flag.name,
            "options": list(flag.options),
            "type": flag.kind,
            "default": flag.default,
            "choices": list(flag.choices) if flag.choices is not None else None,
            "nargs": flag.nargs,
            "help": flag.help,
            "twin_models": flag.name in modelled,
            "managed": flag.name in serverargs.MANAGED,
        }
        for flag in table.flags.values()
        if needle.replace("-", "_") in flag.name or needle in flag.help.lower()
    ]


def _flags(args: argparse.Namespace) -> int:
    rows = _rows(args.version, args.search)
    table = serverargs.table(args.version)
    if args.json:
        print(json.dumps({"sglang_version": table.version, "wheel": table.wheel,
                          "wheel_sha256": table.wheel_sha256, "flags": rows}, indent=1))
        return 0
    view = Table(title=f"SGLang {table.version} launch_server flags ({table.wheel})")
    for column in ("flag", "type", "default", "choices", "twin", "help"):
        view.add_column(column, overflow="fold")
    for row in rows:
        choices = ", ".join(str(c) for c in row["choices"] or [])
        view.add_row(
            row["options"][0],
            row["type"] + (f" {row['nargs']}" if row["nargs"] else ""),
            "" if row["default"] is None else str(row["default"]),
            choices if len(choices) <= 60 else choices[:57] + "...",
            "managed" if row["managed"] else "models" if row["twin_models"] else "-",
            row["help"],
        )
    Console().print(view)
    print(f"{len(rows)} of {len(table.flags)} flags; the twin models "
          f"{sum(r['twin_models'] for r in rows)} of them (twin column).")
    return 0
