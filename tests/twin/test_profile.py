"""Tests of fact profiles: validation, the context they hold in, and their use by the
estimator and the command lines."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import twin
from twin import _args, _cli
from twin._facts import FACTS, fact

MODEL = "Llama-3.1-8B-Instruct"


def _tpot_ms(**kwargs: object) -> float:
    result = twin.estimate(
        {"model_path": MODEL}, scenario="D(256,64)", concurrency=4, max_requests=16, **kwargs
    )
    return float(result["aggregated_metrics"]["stats"]["tpot"]["mean"]) * 1e3


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


def test_only_calibrated_facts_with_sane_factors_are_accepted() -> None:
    assert twin.Profile.calibrated_facts() == (
        "cpu_per_req_s", "decode_moe_layer_floor_s", "eta_gemm_fp8_max", "eta_mem",
        "layer_overhead_s",
        "moe_flops_per_hbm_byte", "moe_trtllm_rate_factor", "prefill_dispatch_layer_s",
        "prefill_dispatch_mla_layer_s", "prefill_dispatch_moe_layer_s",
        "prefill_dispatch_quant_gemm_s", "step_overhead_s"
    )
    profile = twin.Profile.from_dict({"gpu": "H100", "factors": {"eta_mem": 1.07}})
    assert profile.factors == {"eta_mem": 1.07} and profile.gpu == "H100"
    cases = {
        "factors.eta_mem_typo: not a fact": {"eta_mem_typo": 1.0},
        "factors.eta_kv: not a calibrated fact": {"eta_kv": 1.1},
        "factors.step_overhead_s: 75 is outside [0.1, 10]": {"step_overhead_s": 75},
        "factors.eta_mem: 0 is outside": {"eta_mem": 0},
        "factors.eta_mem: -1.0 is outside": {"eta_mem": -1.0},
        "factors.eta_mem: 'fast' is not a number": {"eta_mem": "fast"},
        "factors.eta_mem: True is not a number": {"eta_mem": True},
    }
    for message, factors in cases.items():
        with pytest.raises(ValueError, match=message.replace("[", r"\[")):
            twin.Profile.from_dict({"factors": factors})
    with pytest.raises(ValueError, match="unknown key 'factor'"):
        twin.Profile.from_dict({"factor": {"eta_mem": 1.0}})
    with pytest.raises(ValueError, match="'factors' is missing"):
        twin.Profile.from_dict({"gpu": "H100"})


def test_a_profile_file_is_read_and_a_bad_one_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "gpu: H100\nfactors: {eta_mem: 0.8, step_overhead_s: 1.5}\n")
    assert twin.load_profile(path).factors == {"eta_mem": 0.8, "step_overhead_s": 1.5}
    with pytest.raises(ValueError, match=f"{path}: factors.eta_kv: not a calibrated fact"):
        twin.load_profile(_write(tmp_path, "factors: {eta_kv: 0.8}\n"))
    with pytest.raises(ValueError, match="cannot read the profile"):
        twin.load_profile(tmp_path / "missing.yaml")


def test_using_profile_scales_facts_only_inside_and_only_in_its_thread() -> None:
    profile = twin.Profile.from_dict({"factors": {"eta_mem": 0.5}})
    base = FACTS["eta_mem"].value
    seen: list[float] = []
    assert fact("eta_mem") == base
    with twin.using_profile(profile):
        assert fact("eta_mem") == pytest.approx(base * 0.5)
        assert fact("eta_kv") == FACTS["eta_kv"].value  # not in the profile
        worker = threading.Thread(target=lambda: seen.append(fact("eta_mem")))
        worker.start()
        worker.join()
        with twin.using_profile(None):
            assert fact("eta_mem") == base
    assert seen == [base]
    assert fact("eta_mem") == base


def test_an_estimate_with_a_profile_differs_from_one_without(tmp_path: Path) -> None:
    path = _write(tmp_path, "factors: {eta_mem: 0.5}\n")
    plain = _tpot_ms()
    slower = _tpot_ms(profile=path)
    # Decode of an 8B model at 4 users streams its weights: half the bandwidth, ~2x the time.
    assert 1.6 * plain < slower < 2.1 * plain
    assert _tpot_ms(profile=twin.load_profile(path)) == slower
    with twin.using_profile(twin.load_profile(path)):
        assert _tpot_ms() == slower  # no profile argument: the active one holds
    assert _tpot_ms() == plain
    with pytest.raises(ValueError, match="not a fact"):
        _tpot_ms(profile=_write(tmp_path, "factors: {nope: 1}\n"))


def test_the_profile_flag_is_twin_only_and_checked_at_parse_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "factors: {eta_mem: 0.5}\n")
    assert "profile" in _args.TWIN_ONLY_DESTS
    args = _args.parse_argv(["--model-path", MODEL, "--profile", str(path)])
    assert args.profile == str(path)
    with pytest.raises(SystemExit):
        _args.parse_argv(["--model-path", MODEL, "--profile", str(tmp_path / "none.yaml")])
    assert "argument --profile: cannot read the profile" in capsys.readouterr().err

    def tpot(*extra: str) -> float:
        argv = ["estimate", "--model-path", MODEL, "--scenario", "D(256,64)",
                "--concurrency", "4", "--max-requests", "16", "--json", *extra]
        assert _cli.main(argv) == 0
        return float(json.loads(capsys.readouterr().out)["aggregated_metrics"]["stats"]
                     ["tpot"]["mean"]) * 1e3

    assert tpot() == pytest.approx(_tpot_ms())
    assert tpot("--profile", str(path)) == pytest.approx(_tpot_ms(profile=path))
