"""``/plan``: a capacity plan in the browser: the plan as YAML, the ranked layouts, cost
against latency, why the rest lost, and a button that verifies the best ones as studies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import run, ui

from tuner.exceptions import SpecError, TunerError
from tuner.plan import Candidate, PlanResult, plan_from_dict
from ui._shell import guard, header

if TYPE_CHECKING:
    from service import Service

__all__ = ["plan_options", "plan_page"]

# The example (examples/plan-llama70b.yaml), shown when the page opens.
_EXAMPLE = """\
model: {name: Llama-3.1-70B-Instruct}
workload: {scenarios: ["D(1024,256)"], request_rate: 20}   # or users: 64
slo: {ttft_p99_ms: 2000, tpot_p99_ms: 50}
gpus: {types: [H100, H200, A100-80G, L40S]}   # tp_sizes: [1, 2, 4, 8], max_gpus: 32
# prices: {H100: 2.49}      # USD per GPU-hour; default: the price table, with sources
# verify: {backend: {kind: twin, time_scale: 10}}
"""

_COLUMNS = [
    {"name": "rank", "label": "#", "field": "rank", "align": "right"},
    {"name": "gpu", "label": "GPU", "field": "gpu", "align": "left"},
    {"name": "gpus", "label": "GPUs", "field": "gpus", "align": "right"},
    {"name": "layout", "label": "layout", "field": "layout", "align": "left"},
    {"name": "flags", "label": "flags", "field": "flags", "align": "left"},
    {"name": "goodput", "label": "goodput tok/s", "field": "goodput", "align": "right"},
    {"name": "ttft", "label": "TTFT p50/p99 ms", "field": "ttft", "align": "right"},
    {"name": "tpot", "label": "TPOT p50/p99 ms", "field": "tpot", "align": "right"},
    {"name": "margin", "label": "SLO margin", "field": "margin", "align": "right"},
    {"name": "usd_hour", "label": "$/hour", "field": "usd_hour", "align": "right"},
    {"name": "usd_mtok", "label": "$/M out tok", "field": "usd_mtok", "align": "right"},
]


def _ranked_row(rank: int, c: Candidate) -> dict[str, Any]:
    m = c.metrics
    return {"rank": rank, "gpu": c.gpu, "gpus": c.gpus, "layout": c.layout, "flags": c.flags_text,
            "goodput": f"{m['goodput']:,.0f}",
            "ttft": f"{m['ttft_p50_ms']:,.0f} / {m['ttft_p99_ms']:,.0f}",
            "tpot": f"{m['tpot_p50_ms']:.1f} / {m['tpot_p99_ms']:.1f}",
            "margin": f"{c.margin:.0%}" if c.margin is not None else "",
            "usd_hour": f"{c.usd_per_hour:.2f}",
            "usd_mtok": f"{c.usd_per_mtok:.3f}" if c.usd_per_mtok else "-"}


def plan_options(result: PlanResult) -> dict[str, Any]:
    """ECharts options: each estimated layout's $/hour against its TTFT p99 (log axes), those
    meeting the SLO apart from the rest, the cheapest marked (as ``plan --plot`` draws it)."""
    def point(c: Candidate) -> list[Any]:
        return [round(c.metrics["ttft_p99_ms"], 1), round(c.usd_per_hour, 2),
                f"{c.gpus} x {c.gpu} {c.layout} {c.flags_text}"]

    estimated = result.charted()
    series: list[dict[str, Any]] = [
        {"name": name, "type": "scatter", "symbolSize": 7, "itemStyle": {"color": color},
         "data": [point(c) for c in estimated if c.meets == meets]}
        for name, color, meets in (("misses the SLO", "#bbbbbb", False),
                                   ("meets the SLO", "#2a9d5c", True))]
    if result.best is not None:
        series.append({"name": "cheapest", "type": "scatter", "symbol": "pin",
                       "symbolSize": 28, "itemStyle": {"color": "#d62728"},
                       "data": [point(result.best)]})
    bound = result.spec.slo.bounds().get("ttft_p99_ms")
    if bound is not None:
        series[0]["markLine"] = {"symbol": "none", "data": [{"xAxis": bound}],
                                 "label": {"formatter": "TTFT bound"}}
    return {"animation": False, "legend": {}, "tooltip": {"trigger": "item"},
            "xAxis": {"type": "log", "name": "TTFT p99 ms", "nameLocation": "middle",
                      "nameGap": 28},
            "yAxis": {"type": "log", "name": "$/hour"}, "series": series}


class _PlanPage:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.result: PlanResult | None = None

    def build(self) -> None:
        header("Plan capacity")
        with ui.column().classes("w-full max-w-6xl mx-auto p-4 gap-3"):
            ui.label("The cheapest GPUs, layout and flags that serve a load within an SLO, "
                     "predicted by the twin's estimator; verify the best ones as studies.") \
                .classes("text-gray-700")
            self.editor = ui.textarea(value=_EXAMPLE).props(
                "outlined autogrow input-style='font-family: monospace; font-size: 13px'") \
                .classes("w-full").mark("plan-yaml")
            with ui.row().classes("items-center gap-3"):
                self.run_button = ui.button("Plan", icon="calculate", on_click=self.plan) \
                    .mark("plan-run")
                self.status = ui.label("").classes("text-sm text-gray-700").mark("plan-status")
            self.errors = ui.column().classes("gap-0 text-red-8").mark("plan-errors")
            self.output = ui.column().classes("w-full gap-3")

    async def plan(self) -> None:
        self.errors.clear()
        self.output.clear()
        try:
            data = yaml.safe_load(self.editor.value or "")
            spec = plan_from_dict(data, source="the plan")
        except (yaml.YAMLError, SpecError) as e:
            problems = getattr(e, "errors", None) or [("plan", str(e))]
            with self.errors:
                for path, reason in problems:
                    ui.label(f"{path}: {reason}")
            return
        self.run_button.disable()
        self.status.text = "planning..."
        try:
            result = await run.io_bound(self.svc.plan, spec)
        finally:
            self.run_button.enable()
        if result is None:  # the app is shutting down
            return
        self.result = result
        self.status.text = f"{result.estimates} estimates in {result.seconds:.1f} s"
        self._show(result)

    def _show(self, result: PlanResult) -> None:
        with self.output:
            best = result.best
            if best is None:
                ui.label("No layout meets the SLO within gpus.max_gpus; see why below.") \
                    .classes("text-red-8 font-semibold").mark("plan-best")
            else:
                ui.label(f"Cheapest: {best.gpus} x {best.gpu} as {best.layout} "
                         f"({best.flags_text}) at ${best.usd_per_hour:.2f}/h").classes(
                    "text-lg font-semibold text-green-8").mark("plan-best")
                with ui.row().classes("items-center gap-2"):
                    self.count = ui.number("layouts", value=3, min=1, max=20, precision=0) \
                        .props("dense outlined").classes("w-28").mark("plan-verify-count")
                    ui.button("Verify the best", icon="science", on_click=self.verify) \
                        .props("outline").mark("plan-verify")
                self.studies = ui.column().classes("gap-1").mark("plan-studies")
            ui.table(columns=_COLUMNS, row_key="rank", pagination=10,
                     rows=[_ranked_row(i, c) for i, c in enumerate(result.ranked, 1)],
                     title="Layouts that meet the SLO, cheapest first") \
                .classes("w-full").props("dense flat bordered").mark("plan-ranked")
            ui.echart(plan_options(result)).classes("w-full h-96").mark("plan-chart")
            rows = [{"reason": kind, "layouts": len(group),
                     "cheapest": f"{group[0].gpus} x {group[0].gpu} {group[0].layout} "
                     f"{group[0].flags_text}: {group[0].reason}", "from": group[0].usd_per_hour}
                    for kind, group in result.why_rejected().items()]
            ui.table(columns=[{"name": k, "label": k, "field": k, "align": "left"}
                              for k in ("reason", "layouts", "from", "cheapest")],
                     rows=rows, row_key="reason", title="Why the other layouts lost") \
                .classes("w-full").props("dense flat bordered wrap-cells") \
                .mark("plan-rejected")

    async def verify(self) -> None:
        assert self.result is not None
        try:
            records = await run.io_bound(self.svc.verify_plan, self.result,
                                         int(self.count.value or 1))
        except TunerError as e:
            ui.notify(str(e), type="negative", multi_line=True)
            return
        self.studies.clear()
        if records is None:  # the app is shutting down
            return
        with self.studies:
            ui.label("Queued; each study's page shows the planned figures beside what it "
                     "measures:").classes("text-sm")
            for record in records:
                ui.link(record.study_id, f"/study/{record.study_id}").mark("plan-study")


def plan_page(svc: Service, request: Request) -> RedirectResponse | None:
    """The capacity planner."""
    if (redirect := guard(svc, request)) is not None:
        return redirect
    _PlanPage(svc).build()
    return None
