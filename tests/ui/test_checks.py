"""The study page's checks card: the confirmation verdict, re-runs, flagged measurements."""

from __future__ import annotations

from pathlib import Path

import pytest
from nicegui.testing import User

from tests.api.fakes import QUICK_SPEC, level
from tests.ui.test_pages import one
from tuner.bench.metrics import LevelMetrics
from tuner.store import StudyState, TrialRecord, TrialState, open_store

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("tests/ui/main_app.py")]


def _trial(trial_id: str, number: int, score: float, confirms: str | None = None,
           flag: str | None = None) -> TrialRecord:
    params = {"tp_size": 1, "max_running_requests": 8 if score > 200 else 32}
    measured = LevelMetrics(**level("D(256,128)", 4, params))
    return TrialRecord(study_id="s-1", trial_id=trial_id, number=number, params=params,
                       state=TrialState.COMPLETED, gpus=1, score=score, confirms=confirms,
                       levels=[measured.model_copy(update={"client_bound": flag})])


async def test_verdict_reruns_and_client_bound_levels_are_shown(user: User,
                                                                ui_store: Path) -> None:
    store = open_store(ui_store)
    store.create_study("s-1", "svc-test", {**QUICK_SPEC, "search": {"algorithm": "grid"}})
    flag = "ttft_mean_ms 120.0 (client) vs 20.0 (server)"
    for trial in (_trial("a", 1, 300.0), _trial("b", 2, 100.0, flag=flag),
                  _trial("a-1", 3, 310.0, confirms="a"), _trial("b-1", 4, 105.0, confirms="b")):
        store.upsert_trial(trial)
    store.set_study_state("s-1", StudyState.COMPLETED)
    await user.open("/study/s-1")
    await user.should_see(marker="verdict")
    assert "trial 1 beats the runner-up (trial 2)" in one(user, "verdict").text
    rows = {r["number"]: r for r in one(user, "confirmation").rows}
    assert rows[1]["verdict"] == "winner" and rows[1]["runs"] == 2
    assert "(log-t)" in rows[1]["score"] and "[" in rows[1]["score"]
    trials = {r["number"]: r for r in one(user, "trials").rows}
    assert trials[3]["reason"] == "re-run of #1" and trials[2]["flags"] == "client_bound ×1"
    assert trials[2]["l0"].endswith("⚠")
    assert f"client_bound: {flag}" in one(user, "warning").text
