"""``autotuner flags``: the table of a version, searchable, with the twin's column."""

from __future__ import annotations

import json

import pytest

from tuner import serverargs
from tuner.cli import main


def test_json_lists_every_flag_with_the_twin_column(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flags", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in out["flags"]}
    assert len(rows) > 250 and len(out["wheel_sha256"]) == 64
    assert rows["tp_size"]["twin_models"] and rows["speculative_algorithm"]["twin_models"]
    assert not rows["enable_two_batch_overlap"]["twin_models"]
    assert rows["port"]["managed"]


def test_search_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flags", "--version", "0.5.23", "--search", "cuda_graph_max_bs", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)["flags"]}
    assert "cuda_graph_max_bs_decode" in names and "tp_size" not in names
    assert main(["flags", "--search", "speculative-alg"]) == 0
    text = capsys.readouterr().out
    total = len(serverargs.table().flags)
    assert "EAGLE" in text and f"1 of {total} flags; the twin models 1 of them" in text
    assert main(["flags", "--search", "two-batch-overlap"]) == 0
    assert "the twin models 0 of them" in capsys.readouterr().out


def test_unknown_version_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flags", "--version", "0.1"]) == 2
    assert "supported versions" in capsys.readouterr().err
