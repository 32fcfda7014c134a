"""``backend.profile`` and ``search.prescreen.profile``: checked as paths in the spec, read
when the study starts, handed to the twin server, the estimator and the pre-screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner.backends import make
from tuner.backends.base import Deployment
from tuner.exceptions import SpecError
from tuner.search import prescreen
from tuner.spec import spec_from_dict

SLOW = "factors: {eta_mem: 0.5}\n"


def spec_with(backend: dict[str, Any], **changes: Any) -> Any:
    return spec_from_dict({
        "name": "profiled", "model": {"name": "Llama-3.1-8B-Instruct"},
        "backend": {"gpu": "H100", **backend}, "space": {"tp_size": [1]},
        "workload": {"scenarios": ["D(256,64)"], "concurrency": [4],
                     "max_requests_per_level": 16},
        "objective": {"slo": {"tpot_p99_ms": 1000}},
        **changes,
    })


def _profile(tmp_path: Path, text: str = SLOW) -> str:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("kind", ["twin", "estimate"])
def test_the_path_is_plain_and_stored_absolute(kind: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = spec_with({"kind": kind, "profile": "calib/../p.yaml"})
    assert spec.backend.profile == str(tmp_path / "p.yaml")  # need not exist yet
    for bad, reason in (("-p.yaml", "starts with '-'"), ("p\n.yaml", "control characters")):
        with pytest.raises(SpecError, match=reason) as info:
            spec_with({"kind": kind, "profile": bad})
        assert [path for path, _ in info.value.errors] == ["backend.profile"]
    with pytest.raises(SpecError, match="search.prescreen.profile"):
        spec_with({"kind": kind}, search={"prescreen": {"profile": "-x"}})


def test_local_backends_have_no_profile() -> None:
    with pytest.raises(SpecError, match="backend.profile"):
        spec_from_dict({"name": "x", "model": {"name": "m"}, "space": {"tp_size": [1]},
                        "backend": {"kind": "local", "profile": "/p.yaml"}})


@pytest.mark.parametrize("kind", ["twin", "estimate"])
def test_a_missing_or_bad_profile_fails_the_study_before_its_first_trial(
        kind: str, tmp_path: Path) -> None:
    for path, reason in ((str(tmp_path / "none.yaml"), "cannot read the profile"),
                         (_profile(tmp_path, "factors: {eta_kv: 2}\n"), "not a calibrated")):
        backend = make(spec_with({"kind": kind, "profile": path}), study_id="s",
                       workdir=tmp_path)
        with pytest.raises(SpecError, match=f"backend.profile: .*{reason}") as info:
            backend.preflight()
        assert info.value.errors[0][0] == "backend.profile"
    make(spec_with({"kind": kind, "profile": _profile(tmp_path)}), study_id="s",
         workdir=tmp_path).preflight()


def test_the_twin_server_gets_the_profile_flag(tmp_path: Path) -> None:
    path = _profile(tmp_path)
    argv = make(spec_with({"kind": "twin", "profile": path}), study_id="s",
                workdir=tmp_path).argv({"tp_size": 1}, port=30000)
    assert argv[argv.index("--profile") + 1] == path
    assert "--profile" not in make(spec_with({"kind": "twin"}), study_id="s",
                                   workdir=tmp_path).argv({}, port=30000)


def _tpot(backend: dict[str, Any], tmp_path: Path) -> float:
    estimator = make(spec_with(backend), study_id="s", workdir=tmp_path)
    deployment: Deployment = estimator.deploy({"tp_size": 1}, trial_id="t")
    level = estimator.measure(deployment, scenario="D(256,64)", concurrency=4,
                              out_dir=tmp_path)
    return level.tpot_mean_ms


def test_the_estimate_backend_estimates_with_its_profile(tmp_path: Path) -> None:
    plain = _tpot({"kind": "estimate"}, tmp_path)
    slower = _tpot({"kind": "estimate", "profile": _profile(tmp_path)}, tmp_path)
    assert 1.6 * plain < slower < 2.1 * plain


def test_the_prescreen_estimates_with_its_profile_or_the_twins(tmp_path: Path) -> None:
    path = _profile(tmp_path)

    def score(backend: dict[str, Any], **options: Any) -> float:
        spec = spec_with(backend, search={"prescreen": {"top_k": 1, **options}})
        (prediction,) = prescreen(spec, capacity=1).predictions
        assert prediction.score is not None
        return prediction.score

    plain = score({"kind": "twin"})
    assert score({"kind": "twin"}, profile=path) < 0.8 * plain
    assert score({"kind": "twin", "profile": path}) == score({"kind": "twin"}, profile=path)
    with pytest.raises(SpecError, match="search.prescreen.profile: cannot read"):
        score({"kind": "twin"}, profile=str(tmp_path / "none.yaml"))
