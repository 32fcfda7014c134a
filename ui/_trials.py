"""The study page's trials table: AG Grid with sorting, filters, paging, a column chooser and
row selection, fed one row at a time.

A study of hundreds of trials changes a few rows per second while it runs. A Quasar table
sends every row to every viewer on each change; here the grid gets its rows once, when the
browser says it is ready, and each change after that as an AG Grid transaction of one row
(NiceGUI's research notes, ``aggrid applyTransaction``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import events, ui

from tuner import objective
from tuner.spec import StudySpec
from tuner.store import TrialRecord
from ui._shell import STATE_COLORS

__all__ = ["TrialGrid", "level_key", "trials_grid"]

_PAGE_SIZE = 50
# A Quasar colour class per state, so the grid's chips match the rest of the app.
_STATE_CHIP = (
    "p => `<span class=\"q-chip row inline no-wrap items-center q-chip--dense q-chip--square "
    "text-white bg-${(%s)[p.value] || 'grey-7'}\" style=\"margin:0\">${p.value}</span>`"
)
_NUMBER = "p => p.value == null ? '' : (Math.abs(p.value) < 1e4 ? " \
    "Number(p.value.toPrecision(4)).toString() : Math.round(p.value).toLocaleString('en'))"

_SECONDS = "p => p.value == null ? '' : p.value.toFixed(p.value < 10 ? 1 : 0)"
# Where a trial's time went, as columns: the headers of TrialRecord.TIMINGS.
_TIMING_LABELS = {"deploy_s": "Deploy s", "warmup_s": "Warm-up s", "bench_s": "Bench s"}


def level_key(scenario: str) -> str:
    """A scenario as it names a column (no spaces)."""
    return scenario.replace(" ", "")


def trials_grid(spec: StudySpec, on_select: Callable[[list[str]], None]) -> TrialGrid:
    """The trials heading with a row filter and a column chooser, over the grid."""
    grid: TrialGrid | None = None

    def quick_filter(event: events.ValueChangeEventArguments) -> None:
        assert grid is not None
        grid.run_grid_method("setGridOption", "quickFilterText", event.value or "")

    def choose_columns(event: events.ValueChangeEventArguments) -> None:
        assert grid is not None
        grid.show_columns(set(event.value or []))

    columns = _columns(spec)
    with ui.row().classes("w-full items-center justify-between"):
        ui.label("Trials").classes("text-lg font-semibold")
        with ui.row().classes("items-center gap-2"):
            ui.input(placeholder="Filter rows", on_change=quick_filter) \
                .props("dense outlined clearable").classes("w-48").mark("trial-filter")
            labels = {c["field"]: c["headerName"] for c in columns}
            ui.select(labels, multiple=True, value=list(labels), label="Columns",
                      on_change=choose_columns) \
                .props("dense outlined use-chips options-dense").classes("w-72") \
                .mark("trial-columns")
    grid = TrialGrid(spec, columns, on_select)
    return grid


class TrialGrid(ui.aggrid):
    """The trials of one study as AG Grid rows; :attr:`rows` is what the grid shows.

    Args:
        spec: the study's spec (columns: its searched flags and its levels).
        columns: the grid's column definitions.
        on_select: called with the trial ids the user selected (tick boxes), on every change.
    """

    def __init__(self, spec: StudySpec, columns: list[dict[str, Any]],
                 on_select: Callable[[list[str]], None]) -> None:
        super().__init__(
            {
                "columnDefs": columns,
                "rowData": [],
                ":getRowId": "p => p.data.id",
                "defaultColDef": {"sortable": True, "filter": True, "resizable": True},
                "rowSelection": {"mode": "multiRow", "enableClickSelection": False},
                "pagination": True,
                "paginationPageSize": _PAGE_SIZE,
                "paginationPageSizeSelector": [25, 50, 100, 500],
                "domLayout": "autoHeight",
                "overlayNoRowsTemplate": "No trials yet.",
            },
            auto_size_columns=False,
        )
        self.classes("w-full").mark("trials")
        self.spec = spec
        self.params = list(spec.space)
        self.levels = _levels(spec)
        self.fields = [c["field"] for c in columns]
        self._rows: dict[str, dict[str, Any]] = {}
        self._ready = False
        self._on_select = on_select
        self.on("gridReady", self._send_all)
        self.on("selectionChanged", self._selection_changed)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows, by trial number."""
        return sorted(self._rows.values(), key=lambda r: r["number"])

    def show_columns(self, shown: set[str]) -> None:
        """Show the columns whose fields are in ``shown``, hide the others."""
        self.run_grid_method("setColumnsVisible", [f for f in self.fields if f in shown], True)
        self.run_grid_method("setColumnsVisible",
                             [f for f in self.fields if f not in shown], False)

    # rows ------------------------------------------------------------------------------------

    def put(self, trial: TrialRecord, numbers: dict[str, int]) -> None:
        """Show ``trial`` (new or changed); ``numbers``: trial id -> number, for re-runs."""
        row = self.row(trial, numbers)
        known = trial.trial_id in self._rows
        self._rows[trial.trial_id] = row
        if self._ready:
            self.run_grid_method("applyTransaction", {"update" if known else "add": [row]})

    def row(self, trial: TrialRecord, numbers: dict[str, int]) -> dict[str, Any]:
        """The grid row of ``trial``: its params, state, score, why, where its time went, and
        per level TTFT/TPOT p99 with a tick when the level met the SLO (and a warning sign when
        it was flagged)."""
        flags = ", ".join(f"{flag} ×{n}" for flag, n in trial.flag_counts().items())
        row: dict[str, Any] = {"id": trial.trial_id, "number": trial.number,
                               "state": trial.state.value, "gpus": trial.gpus,
                               "score": trial.score, "node": trial.node_ip or "",
                               "reason": _why(trial, numbers), "flags": flags}
        row.update({name: trial.timings.get(name) for name in TrialRecord.TIMINGS})
        for i, name in enumerate(self.params):
            value = trial.params.get(name)
            row[f"p{i}"] = value if isinstance(value, int | float | str) or value is None \
                else str(value)
        for level in trial.levels:
            try:
                i = self.levels.index((level_key(level.scenario), level.concurrency))
            except ValueError:
                continue
            metrics = objective.scored(level, self.spec.objective)
            mark = "✓" if objective.meets_slo(level, self.spec.objective) else "✗"
            warn = " ⚠" if level.flags() else ""
            row[f"l{i}"] = f"{metrics.ttft_p99_ms:.0f} / {metrics.tpot_p99_ms:.1f} {mark}{warn}"
        return row

    # browser events --------------------------------------------------------------------------

    def _send_all(self) -> None:
        # The grid exists in the browser from here: all rows now, one transaction per change
        # after. (A reconnecting browser builds a new grid and asks again.)
        self._ready = True
        self.run_grid_method("setGridOption", "rowData", self.rows)

    async def _selection_changed(self) -> None:
        selected = await self.get_selected_rows()
        self._on_select([row["id"] for row in selected])


def _levels(spec: StudySpec) -> list[tuple[str, int]]:
    return [(level_key(s), c) for s in spec.workload.scenarios for c in spec.workload.concurrency]


def _columns(spec: StudySpec) -> list[dict[str, Any]]:
    score = objective.score_label(spec.objective)
    colors = json.dumps({k: v for k, v in STATE_COLORS.items()})
    columns: list[dict[str, Any]] = [
        {"field": "number", "headerName": "#", "width": 80, "sort": "asc",
         "filter": "agNumberColumnFilter"},
        {"field": "state", "headerName": "Status", "width": 120,
         ":cellRenderer": _STATE_CHIP % colors},
    ]
    columns += [{"field": f"p{i}", "headerName": name, "width": 130}
                for i, name in enumerate(list(spec.space))]
    columns += [
        {"field": "gpus", "headerName": "GPUs", "width": 80, "filter": "agNumberColumnFilter"},
        {"field": "score", "headerName": score, "width": 130,
         "filter": "agNumberColumnFilter", ":valueFormatter": _NUMBER},
        {"field": "node", "headerName": "Node", "width": 120},
        {"field": "reason", "headerName": "Reason", "width": 260, "tooltipField": "reason"},
        {"field": "flags", "headerName": "Flags", "width": 140},
    ]
    columns += [{"field": name, "headerName": _TIMING_LABELS[name], "width": 110,
                 "filter": "agNumberColumnFilter", ":valueFormatter": _SECONDS}
                for name in TrialRecord.TIMINGS]
    several = len(spec.workload.scenarios) > 1
    columns += [{"field": f"l{i}", "width": 150,
                 "headerName": (f"{s} " if several else "") + f"c={c} TTFT/TPOT p99 ms"}
                for i, (s, c) in enumerate(_levels(spec))]
    return columns


def _why(trial: TrialRecord, numbers: dict[str, int]) -> str:
    """The trial's reason with the start of its message: the row says why, not just what.
    A confirmation run says which trial it repeats."""
    text = trial.reason.value if trial.reason else ""
    if trial.confirms is not None:
        text = f"re-run of #{numbers.get(trial.confirms, '?')}" + (f", {text}" if text else "")
    if trial.message:
        text += (": " if text else "") + trial.message[:120]
    return text
