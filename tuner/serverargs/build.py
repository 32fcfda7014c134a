"""``python -m tuner.serverargs.build --version X``: write the flag table of SGLang X.

Downloads the wheel (no dependencies) once, reads its source and writes
``tuner/serverargs/tables/sglang-X.json``; commit that file to support version X.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuner._sglang_wheel import SglangWheel, WheelError
from tuner.serverargs._build import build_table
from tuner.serverargs._table import TABLES

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Build one table; exit status 0, or 1 with the reason on stderr."""
    parser = argparse.ArgumentParser(prog="python -m tuner.serverargs.build", description=__doc__)
    parser.add_argument("--version", required=True, help="SGLang release, e.g. 0.5.5")
    parser.add_argument("--out", type=Path, default=TABLES, help="folder of the tables")
    args = parser.parse_args(argv)
    try:
        data = build_table(SglangWheel.fetch(args.version))
    except WheelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sglang-{data['sglang_version']}.json"
    path.write_text(_dumps(data))
    print(f"{path}: {len(data['flags'])} flags of SGLang {data['sglang_version']}")
    return 0


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one flag per line, so a new SGLang version shows as a readable diff."""
    head = {k: v for k, v in data.items() if k != "flags"}
    rows = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in data["flags"])
    return json.dumps(head, indent=1)[:-2] + ',\n "flags": [\n' + rows + "\n ]\n}\n"


if __name__ == "__main__":
    sys.exit(main())
