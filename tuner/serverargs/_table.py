"""The committed flag tables: every ``launch_server`` flag of each supported SGLang version.

Each ``tables/sglang-<version>.json`` is written by ``python -m tuner.serverargs.build`` from
that version's wheel and names the wheel and its sha256; nothing here edits them by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["TABLES", "Flag", "FlagTable", "default_version", "table", "twin_modelled", "versions"]

TABLES = Path(__file__).parent / "tables"


@dataclass(frozen=True)
class Flag:
    """One launch_server flag, as SGLang's source declares it.

    Attributes:
        name: the ServerArgs field (dashes as underscores), the key of a trial config.
        options: its spellings on the command line, the first one canonical.
        kind: ``int``, ``float``, ``str`` or ``bool`` (a store-true switch).
        default: SGLang's default (None also when SGLang derives it at start-up).
        choices: the accepted values, when SGLang lists them.
        nargs: argparse's nargs (``+``, ``*``, ``?``) or None for one value.
        help: first line of SGLang's help.
    """

    name: str
    options: tuple[str, ...]
    kind: str
    default: Any
    choices: tuple[Any, ...] | None
    nargs: str | None
    help: str

    @property
    def option(self) -> str:
        """The spelling the tuner writes: ``--tp-size`` for ``tp_size`` when SGLang accepts
        it, else SGLang's first one."""
        dashed = "--" + self.name.replace("_", "-")
        return dashed if dashed in self.options else self.options[0]


@dataclass(frozen=True)
class FlagTable:
    """The flags of one SGLang version and the wheel they were read from."""

    version: str
    wheel: str
    wheel_sha256: str
    flags: dict[str, Flag]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlagTable:
        flags = {
            row["name"]: Flag(
                name=row["name"],
                options=tuple(row["options"]),
                kind=row["type"],
                default=row["default"],
                choices=tuple(row["choices"]) if row["choices"] is not None else None,
                nargs=row["nargs"],
                help=row["help"],
            )
            for row in data["flags"]
        }
        return cls(data["sglang_version"], data["wheel"], data["wheel_sha256"], flags)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


@cache
def versions() -> tuple[str, ...]:
    """SGLang versions with a committed table, oldest first."""
    found = [p.name.removeprefix("sglang-").removesuffix(".json") for p in TABLES.glob("*.json")]
    return tuple(sorted(found, key=_version_key))


def default_version() -> str:
    """The twin's SGLang version: the default of ``backend.sglang_version``."""
    from twin import SGLANG_VERSION

    return SGLANG_VERSION


def twin_modelled() -> frozenset[str]:
    """The flags of the twin's SGLang version that the twin simulates; it accepts the others
    but they change nothing."""
    from twin import modelled_flags

    return modelled_flags()


@cache
def table(version: str | None = None) -> FlagTable:
    """The flag table of an SGLang version (default: the twin's).

    Raises:
        ValueError: no table is committed for that version; the message lists those that are.
    """
    version = version or default_version()
    if version not in versions():
        raise ValueError(
            f"no flag table for SGLang {version}; supported versions: {', '.join(versions())} "
            f"(add one with: python -m tuner.serverargs.build --version {version})"
        )
    return FlagTable.from_dict(json.loads((TABLES / f"sglang-{version}.json").read_text()))
