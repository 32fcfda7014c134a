"""The CLI's error handling and the commands that need no study run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_bad_spec_exits_2_with_one_clear_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nmodel: {name: m}\nspace: {tp_sise: [1]}\n")
    assert main(["--store", str(tmp_path / "s.db"), "run", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "space.tp_sise" in err and "tp_size" in err


def test_unknown_study_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", str(tmp_path / "s.db"), "show", "nope"]) == 1
    assert "no study 'nope'" in capsys.readouterr().err


def test_render_prints_the_exact_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(ROOT / "examples" / "quickstart.yaml"),
                 "--params", '{"max_running_requests": 8, "schedule_policy": "lpm"}']) == 0
    out = capsys.readouterr().out
    assert "-m twin.launch_server" in out and "--max-running-requests 8" in out
    assert "--mem-fraction-static 0.85" in out and "--schedule-policy lpm" in out
    assert main(["render", str(ROOT / "examples" / "quickstart.yaml"),
                 "--params", '{"max_runing_requests": 8}']) == 2


def test_list_on_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", str(tmp_path / "s.db"), "list"]) == 0
    assert "studies" in capsys.readouterr().out


def test_registry_matches_the_spec_kinds() -> None:
    import typing

    from tuner.backends import BACKENDS
    from tuner.spec import BackendSpec

    union = typing.get_args(BackendSpec)[0]
    kinds = {typing.get_args(m.model_fields["kind"].annotation)[0]
             for m in typing.get_args(union)}
    assert set(BACKENDS) == kinds


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_go_before_or_after_the_command(where: str, tmp_path: Path) -> None:
    from tuner.cli import main

    store = tmp_path / "elsewhere.db"
    option = ["--store", str(store)]
    argv = [*option, "list"] if where == "before" else ["list", *option]
    assert main(argv) == 0
    assert store.exists()
