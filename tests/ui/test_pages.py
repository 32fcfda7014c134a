"""The pages, driven by NiceGUI's simulated ``user`` (no browser), over a fake driver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from nicegui import ui
from nicegui.testing import User

from tests.api.fakes import QUICK_SPEC
from tests.ui.conftest import service
from tuner.spec import spec_from_dict
from ui import quickstart_text

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("tests/ui/main_app.py")]


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Let the app's timers run until ``check()`` is truthy."""
    for _ in range(int(timeout / 0.05)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true after {timeout} s")


def one(user: User, marker: str) -> Any:
    elements = user.find(marker=marker).elements
    assert len(elements) == 1, (marker, elements)
    return next(iter(elements))


def submit(spec: dict[str, Any] | None = None) -> str:
    return service().manager.submit(spec_from_dict(spec or QUICK_SPEC)).study_id


async def test_studies_page_lists_studies(user: User) -> None:
    await user.open("/")
    await user.should_see("Studies")
    assert one(user, "studies").rows == []
    study_id = submit()
    manager = service().manager
    await eventually(lambda: not manager.is_active(study_id))
    rows = await eventually(lambda: one(user, "studies").rows)  # the page refreshes itself
    assert rows[0]["study_id"] == study_id
    await eventually(lambda: one(user, "studies").rows[0]["state"] == "completed")
    row = one(user, "studies").rows[0]
    assert row["progress"] == 1.0 and row["trials"] == "4 / 4"
    assert row["backend"] == "twin · 2 GPUs"


async def test_new_study_form_starts_from_the_quickstart(user: User) -> None:
    await user.open("/new")
    quickstart = yaml.safe_load(quickstart_text())
    assert one(user, "name").value == quickstart["name"]
    assert one(user, "model").value == quickstart["model"]["name"]
    names = [e.value for e in user.find(marker="flag-name").elements]
    assert sorted(names) == sorted(quickstart["space"])
    assert one(user, "yaml").value == quickstart_text()
    await user.should_not_see(marker="error")  # the quickstart is valid


async def test_form_choices_come_from_the_registries(user: User) -> None:
    import typing

    from tuner.backends import BACKENDS
    from tuner.spec import SearchSpec

    await user.open("/new")
    assert one(user, "kind").options == sorted(BACKENDS)
    algorithms = typing.get_args(SearchSpec.model_fields["algorithm"].annotation)
    assert one(user, "algorithm").options == list(algorithms)


async def test_form_submits_the_same_spec_the_api_takes(user: User) -> None:
    await user.open("/new")
    # the fake driver's made-up TPOT at 8 users is about 21 ms: loosen the quickstart's bound
    user.find(marker="slo-tpot_p90_ms").clear().type("40")
    user.find(marker="submit").click()
    await user.should_see(marker="trials")
    study_id = one(user, "study-id").text
    record = service().manager.store.get_study(study_id)
    data = yaml.safe_load(quickstart_text())
    data["objective"]["slo"]["tpot_p90_ms"] = 40
    quickstart = spec_from_dict(data)
    assert record.spec == quickstart.model_dump(mode="json")
    # the trials table fills in (a row per grid point) and the best card shows the exact
    # launch command
    grid = len(quickstart.space["max_running_requests"])
    await eventually(lambda: len(one(user, "trials").rows) == grid)
    await user.should_see(marker="launch", retries=100)
    assert "sglang.launch_server" in one(user, "launch").content


async def test_form_shows_errors_inline(user: User) -> None:
    await user.open("/new")
    concurrency = one(user, "concurrency")
    user.find(marker="concurrency").clear().type("16, 4")
    await user.should_see("workload.concurrency: levels must be distinct and in ascending order")
    assert concurrency.error == "levels must be distinct and in ascending order"
    user.find(marker="name").clear().type("Bad Name")
    await user.should_see(marker="error")
    assert one(user, "name").error is not None
    user.find(marker="submit").click()
    await user.should_see("Fix the problems listed below the form first.")
    assert service().manager.store.list_studies() == []
    user.find(marker="concurrency").clear().type("4, 16")
    user.find(marker="name").clear().type("good-name")
    await user.should_not_see(marker="error")
    assert concurrency.error is None


async def test_form_warns_when_the_twin_models_none_of_the_searched_flags(user: User) -> None:
    await user.open("/new")
    await user.should_not_see(marker="caution")
    user.find(marker="flag-name").clear().type("page_size")
    user.find(marker="flag-values").clear().type("1, 16")
    await user.should_see(marker="caution")
    assert "the twin does not model page_size" in one(user, "caution").text
    await user.should_not_see(marker="error")  # valid: a warning, not an error


async def test_yaml_view(user: User) -> None:
    await user.open("/new")
    user.find(marker="model").clear().type("Qwen2.5-7B-Instruct")
    user.find("Edit as YAML").click()
    await eventually(lambda: "Qwen2.5-7B-Instruct" in one(user, "yaml").value)
    data = yaml.safe_load(one(user, "yaml").value)
    assert data["model"]["name"] == "Qwen2.5-7B-Instruct"
    assert data["fixed"] == yaml.safe_load(quickstart_text()).get("fixed", {})  # kept

    one(user, "yaml").value = yaml.safe_dump({**data, "workload": {"concurrency": [0]}})
    user.find(marker="check").click()
    await user.should_see("workload.concurrency: every level must be at least 1")
    one(user, "yaml").value = yaml.safe_dump({**data, "name": "from-yaml"})
    user.find("Form").click()
    await eventually(lambda: one(user, "name").value == "from-yaml")
    user.find(marker="submit").click()
    await user.should_see(marker="trials")
    assert one(user, "study-id").text.startswith("from-yaml-")


async def test_study_page_updates_live(user: User) -> None:
    from tests.api.fakes import FakeDriver

    driver = service().manager.driver
    assert isinstance(driver, FakeDriver)
    driver.hold = hold = __import__("threading").Event()
    study_id = submit()
    await user.open(f"/study/{study_id}")
    await user.should_see("No trial has met the SLO yet.")
    await eventually(lambda: len(one(user, "trials").rows) == 1)
    assert one(user, "trials").rows[0]["state"] == "running"
    assert one(user, "state").text == "running"
    hold.set()
    await eventually(lambda: one(user, "state").text == "completed")
    rows = one(user, "trials").rows
    assert [r["state"] for r in rows] == ["completed"] * 4
    assert all(r["l0"].endswith(("✓", "✗")) and " / " in r["l0"] for r in rows)
    # where each trial's time went: deploying, warming up, measuring its two levels
    assert {(r["deploy_s"], r["warmup_s"], r["bench_s"]) for r in rows} == {(12.5, 0.25, 6.0)}
    assert one(user, "progress").value == 1.0
    assert one(user, "progress-label").text == "4 of 4 trials finished"
    await user.should_see(marker="best-score")
    chart = one(user, "chart")
    series = {s["name"]: s["data"] for s in chart.options["series"]}
    assert len(series["meets SLO"]) + len(series["misses SLO"]) == 8
    assert series["Pareto front"]
    assert chart.options["series"][0]["markLine"]["data"] == [{"yAxis": 400}]

    user.find(marker="download-best").click()
    download = await user.download.next()
    assert download.content.decode().startswith("python -m sglang.launch_server")
    user.find(marker="csv").click()
    download = await user.download.next()
    assert download.content.decode().splitlines()[0].startswith("trial_id,number,state")


async def test_stop_and_resume_buttons(user: User) -> None:
    import threading

    driver = service().manager.driver
    driver.hold = hold = threading.Event()  # type: ignore[attr-defined]
    study_id = submit()
    await user.open(f"/study/{study_id}")
    await eventually(lambda: one(user, "state").text == "running")
    await user.should_see(marker="stop")
    await user.should_not_see(marker="resume")
    user.find(marker="stop").click()
    await eventually(lambda: one(user, "state").text == "stopped")
    await user.should_see(marker="resume", retries=50)
    await user.should_not_see(marker="stop")
    hold.set()
    user.find(marker="resume").click()
    await eventually(lambda: one(user, "state").text == "completed")


async def test_delete_from_the_study_page(user: User) -> None:
    study_id = submit()
    await eventually(lambda: not service().manager.is_active(study_id))
    await user.open(f"/study/{study_id}")
    user.find(marker="delete").click()
    user.find(marker="confirm-delete").click()
    await user.should_see("Studies")
    assert service().manager.store.list_studies() == []


async def test_unknown_study(user: User) -> None:
    await user.open("/study/nope-000000")
    await user.should_see("There is no study 'nope-000000'.")


async def test_ray_dashboard_off(user: User) -> None:
    study_id = submit()
    await user.open(f"/study/{study_id}")
    await user.should_see("autotuner serve --ray-dashboard", retries=20)


@pytest.fixture
def dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNER_UI_TEST_DASHBOARD", "1")


@pytest.mark.usefixtures("dashboard")
async def test_ray_dashboard_link(user: User) -> None:
    study_id = submit()
    manager = service().manager
    await eventually(lambda: manager.ray_started)
    await user.open(f"/study/{study_id}")
    link = one(user, "ray-link")
    assert isinstance(link, ui.link) and link.props["href"] == "http://127.0.0.1:8265"


@pytest.mark.usefixtures("dashboard")
async def test_ray_dashboard_missing_extra(user: User) -> None:
    from tuner.exceptions import NotSupportedError

    driver = service().manager.driver

    def init_ray(*, gpus: int, dashboard: bool) -> str | None:
        if dashboard:
            raise NotSupportedError("the Ray dashboard needs the dashboard extra")
        return None

    driver.init_ray = init_ray  # type: ignore[method-assign]
    study_id = submit()
    await eventually(lambda: service().manager.ray_started)
    await user.open(f"/study/{study_id}")
    await user.should_see("it needs the ray[default] extra", retries=20)


async def test_study_page_compares_trials_and_shows_importance(user: User) -> None:
    spec = {**QUICK_SPEC, "space": {"tp_size": [1, 2],
                                    "max_running_requests": [8, 16, 32, 64, 128, 256]}}
    study_id = submit(spec)
    manager = service().manager
    await eventually(lambda: not manager.is_active(study_id))
    await user.open(f"/study/{study_id}")
    await user.should_see(marker="trials")
    grid = one(user, "trials")
    assert len(grid.rows) == 12
    assert {"sortable", "filter"} <= set(grid.options["defaultColDef"])
    assert grid.options["pagination"] is True
    # twelve finished trials: the importance chart names the flags, tp_size first (the fake
    # driver's throughput grows with tp far more than with the cap)
    chart = one(user, "importance")
    assert chart.options["yAxis"]["data"][-1] == "tp_size"
    await user.should_see("Choose two or more trials")
    first, second = grid.rows[0]["id"], grid.rows[-1]["id"]
    one(user, "compare").set_value([first, second])
    await user.should_see(marker="compare-chart")
    lines = one(user, "compare-chart").options["series"]
    assert [s["name"] for s in lines] == ["#1", "#12"]
    assert [point[0] for point in lines[0]["data"]] == [4, 16]  # the concurrency ladder
    table = one(user, "compare-table")
    assert [c["label"] for c in table.columns] == ["Level", "#1", "#12"]
    assert len(table.rows) == 2 and all(first in r and second in r for r in table.rows)


_SMALL_PLAN = {
    "model": {"name": "Llama-3.1-8B-Instruct"},
    "workload": {"scenarios": ["D(512,128)"], "users": 16, "max_requests": 48},
    "slo": {"ttft_p99_ms": 3000, "tpot_p99_ms": 60},
    "gpus": {"types": ["H100", "L40S"], "tp_sizes": [1, 2], "max_gpus": 4},
    "space": {"max_running_requests": [None, 8]},
}


async def test_plan_page_plans_charts_and_verifies(user: User) -> None:
    await user.open("/plan")
    one(user, "plan-yaml").value = yaml.safe_dump({**_SMALL_PLAN, "colour": "red"})
    user.find(marker="plan-run").click()
    await user.should_see("colour: unknown field")
    one(user, "plan-yaml").value = yaml.safe_dump(_SMALL_PLAN)
    user.find(marker="plan-run").click()
    await eventually(lambda: user.find(marker="plan-status").elements.pop().text
                     .endswith(" s"), timeout=60)
    assert one(user, "plan-best").text.startswith("Cheapest: ")
    ranked = one(user, "plan-ranked").rows
    assert ranked and [row["rank"] for row in ranked] == list(range(1, len(ranked) + 1))
    assert one(user, "plan-rejected").rows  # L40S tp1 cannot keep up, e.g.
    chart = one(user, "plan-chart").options
    assert {s["name"] for s in chart["series"]} >= {"meets the SLO", "cheapest"}
    one(user, "plan-verify-count").value = 1
    user.find(marker="plan-verify").click()
    await user.should_see(marker="plan-study", retries=100)
    (study_id,) = [link.text for link in user.find(marker="plan-study").elements]
    record = service().manager.store.get_study(study_id)
    assert record.name.startswith("plan-verify-1-")
    await user.open(f"/study/{study_id}")
    await user.should_see("Planned:")
