"""The flag-table builder: the committed tables are what it reads from SGLang's wheels, and it
reads what argparse would register."""

from __future__ import annotations

import argparse
import json
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.tuner.serverargs.support import wheel_table
from tuner import serverargs
from tuner._sglang_wheel import SglangWheel
from tuner.serverargs import build
from tuner.serverargs._build import SERVER_ARGS, build_table
from tuner.serverargs._table import TABLES


@pytest.fixture()
def built(sglang_wheel: SglangWheel) -> dict[str, Any]:
    return wheel_table(sglang_wheel)


def _committed(version: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TABLES / f"sglang-{version}.json").read_text())
    return data


def test_committed_table_is_what_the_wheel_says(built: dict[str, Any]) -> None:
    committed = _committed(built["sglang_version"])
    assert committed["wheel_sha256"] == built["wheel_sha256"]
    mine = {row["name"]: row for row in committed["flags"]}
    theirs = {row["name"]: row for row in built["flags"]}
    assert sorted(mine) == sorted(theirs), "flag names drifted: rebuild the table"
    for name, row in theirs.items():
        for key in ("options", "type", "default", "choices", "nargs"):
            assert mine[name][key] == row[key], f"{name}.{key}: table {mine[name][key]!r}, " \
                f"wheel {row[key]!r}"


def test_the_wheel_has_the_flags_users_set(built: dict[str, Any]) -> None:
    flags = {row["name"]: row for row in built["flags"]}
    assert len(flags) > 250
    # from_cli_args renames argparse's dest (tensor_parallel_size) to the field users know.
    assert flags["tp_size"]["options"] == ["--tensor-parallel-size", "--tp-size"]
    assert flags["tp_size"]["default"] == 1 and flags["tp_size"]["type"] == "int"
    assert flags["speculative_algorithm"]["choices"] == ["EAGLE", "EAGLE3", "NEXTN",
                                                         "STANDALONE", "NGRAM"]
    assert flags["enable_dp_attention"]["type"] == "bool"
    assert "trtllm_mha" in flags["attention_backend"]["choices"]
    assert flags["schedule_policy"]["default"] == "fcfs"


def test_every_committed_table_names_its_wheel() -> None:
    assert serverargs.default_version() in serverargs.versions()
    assert len(serverargs.versions()) >= 2
    for version in serverargs.versions():
        table = serverargs.table(version)
        assert table.version == version and len(table.wheel_sha256) == 64
        assert table.wheel.startswith(f"sglang-{version}-")
        assert {"tp_size", "dp_size", "mem_fraction_static"} <= set(table.flags)


# A tiny stand-in for SGLang's server_args.py in both styles, whose add_cli_args we may run.
_OLD_STYLE = '''
import argparse
CHOICES = ["a", "b"]
class ServerArgs:
    tp_size: int = 1
    policy: str = "a"
    frac: float = None
    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--tensor-parallel-size", "--tp-size", type=int,
                            default=ServerArgs.tp_size, help="TP.\\nmore")
        parser.add_argument("--policy", type=str, default=ServerArgs.policy,
                            choices=CHOICES + ["c"], help=f"the {CHOICES} policy")
        parser.add_argument("--frac", type=float, default=ServerArgs.frac)
        parser.add_argument("--sizes", type=int, nargs="+", default=None)
        parser.add_argument("--flag", action="store_true")
    @classmethod
    def from_cli_args(cls, args):
        args.tp_size = args.tensor_parallel_size
'''

_NEW_STYLE = '''
import argparse
from typing import Literal, Optional, List
from sglang.srt.arg_groups.arg_utils import A, Arg, add_cli_args_from_dataclass
class Ns:
    tp_size: A[int, Arg(help="TP.", aliases=["--tensor-parallel-size"])] = 1
    mode: A[Literal["x", "y"], "Mode."] = "x"
    sizes: A[Optional[List[int]], "Sizes."] = None
    hidden: A[int, Arg(no_cli=True)] = 3
    flag: A[bool, "A switch."] = False
    plain: int = 0
_INPUT_NAMESPACES = [Ns]
def _declared_default(name):
    return getattr(Ns, name)
class ServerArgs:
    @staticmethod
    def add_cli_args(parser):
        add_cli_args_from_dataclass(parser, ServerArgs)
        parser.add_argument("--extra", type=str, default=_declared_default("mode"),
                            choices=["x", "y"], help="Extra.")
'''


def _fake_wheel(tmp_path: Path, source: str) -> SglangWheel:
    path = tmp_path / "sglang-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(SERVER_ARGS, textwrap.dedent(source))
    return SglangWheel(path)


def _argparse_view(source: str) -> dict[str, dict[str, Any]]:
    """What argparse registers when the old-style stand-in's add_cli_args runs."""
    scope: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "server_args", "exec"), scope)  # our own text
    parser = argparse.ArgumentParser()
    scope["ServerArgs"].add_cli_args(parser)
    return {a.dest: {"options": a.option_strings, "default": a.default, "choices": a.choices,
                     # a switch takes no value: the table says so by its type, bool
                     "nargs": a.nargs or None} for a in parser._actions if a.dest != "help"}


def test_old_style_rows_match_argparse(tmp_path: Path) -> None:
    table = build_table(_fake_wheel(tmp_path, _OLD_STYLE))
    rows = {row["name"]: row for row in table["flags"]}
    parsed = _argparse_view(_OLD_STYLE)
    parsed["tp_size"] = parsed.pop("tensor_parallel_size")
    assert sorted(rows) == sorted(parsed)
    for name, seen in parsed.items():
        for key in ("options", "default", "choices", "nargs"):
            assert rows[name][key] == seen[key], (name, key)
    assert rows["tp_size"]["help"] == "TP."
    assert rows["policy"]["help"] == "the {...} policy"
    assert rows["flag"]["type"] == "bool" and rows["sizes"]["type"] == "int"


def test_new_style_fields_become_rows(tmp_path: Path) -> None:
    rows = {row["name"]: row for row in build_table(_fake_wheel(tmp_path, _NEW_STYLE))["flags"]}
    assert sorted(rows) == ["extra", "flag", "mode", "sizes", "tp_size"]  # no_cli, plain: none
    assert rows["tp_size"]["options"] == ["--tp-size", "--tensor-parallel-size"]
    assert rows["mode"]["choices"] == ["x", "y"] and rows["mode"]["default"] == "x"
    assert rows["sizes"]["nargs"] == "+" and rows["sizes"]["type"] == "int"
    assert rows["flag"]["type"] == "bool" and rows["flag"]["default"] is False
    assert rows["extra"]["default"] == "x"


def test_build_command_writes_a_table(tmp_path: Path, sglang_wheel: SglangWheel,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(SglangWheel, "fetch", classmethod(lambda cls, version: sglang_wheel))
    assert build.main(["--version", sglang_wheel.version, "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / f"sglang-{sglang_wheel.version}.json").read_text())
    assert written == _committed(sglang_wheel.version)
    assert "flags of SGLang" in capsys.readouterr().out
