"""SGLang's own source, read from its wheel: the oracle for its flags and start-up rules.

The wheel is fetched with ``pip download --no-deps`` (a few MB, no GPU packages) into a cache
folder and read as a zip: its modules are parsed, never imported, and nothing of it is copied
into the project. The flag-table builder and the parity tests use this one reader.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tuner._home import default_home

__all__ = ["SglangWheel", "WheelError", "fetch_wheel", "wheel_cache"]

# pip's own time limit for the download; the registry answers in about a second.
_PIP_TIMEOUT_S = 300


class WheelError(RuntimeError):
    """The wheel could not be fetched or does not hold what we read from it."""


def wheel_cache() -> Path:
    """Where fetched wheels are kept: ``$AUTOTUNER_WHEELS`` or ``<home>/wheels``."""
    return Path(os.environ.get("AUTOTUNER_WHEELS", default_home() / "wheels"))


def _check_version(version: str) -> str:
    # A version reaches pip's argv: accept only what PEP 440 release strings look like.
    if not version or not all(c.isalnum() or c in ".+-" for c in version) or version[0] in "-+.":
        raise WheelError(f"sglang version {version!r}: not a release version such as 0.5.5")
    return version


def fetch_wheel(version: str, cache: Path | None = None) -> Path:
    """The path of ``sglang-<version>-py3-none-any.whl``, downloaded once into ``cache``."""
    version = _check_version(version)
    folder = (cache or wheel_cache()) / f"sglang-{version}"
    found = sorted(folder.glob("sglang-*.whl")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
            "--disable-pip-version-check", "--only-binary", ":all:",
            f"sglang=={version}", "-d", str(folder)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WheelError(f"pip download sglang=={version}: no answer in {_PIP_TIMEOUT_S} s; "
                         "check access to the package index") from exc
    found = sorted(folder.glob("sglang-*.whl"))
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise WheelError(f"pip download sglang=={version} failed: {' | '.join(tail)}; "
                         "check the version exists and the package index is reachable")
    return found[0]


@dataclass(frozen=True)
class SglangWheel:
    """One SGLang wheel, read as a zip."""

    path: Path

    @classmethod
    def fetch(cls, version: str, cache: Path | None = None) -> SglangWheel:
        return cls(fetch_wheel(version, cache))

    @cached_property
    def version(self) -> str:
        # sglang-0.5.5-py3-none-any.whl
        return self.path.name.split("-")[1]

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def read(self, member: str) -> str:
        """The text of one file of the wheel, e.g. ``sglang/srt/server_args.py``."""
        try:
            with zipfile.ZipFile(self.path) as wheel:
                return wheel.read(member).decode("utf-8")
        except KeyError as exc:
            raise WheelError(f"{self.path.name} has no {member}") from exc

    def module(self, member: str) -> ast.Module:
        """One module of the wheel, parsed (never imported)."""
        return ast.parse(self.read(member), filename=member)
