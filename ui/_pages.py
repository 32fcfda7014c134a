"""The studies page and a study's live page."""

from __future__ import annotations

import time
from typing import Any

import yaml
from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from service import Service, StudyView, study_spec, trials_csv
from tuner import objective
from tuner.backends import BACKENDS
from tuner.events import EventKind
from tuner.exceptions import StudyNotFoundError, TunerError
from tuner.search import Verdict, judge, param_importance
from tuner.spec import StudySpec
from tuner.store import StudyRecord, StudyState, TrialRecord
from ui._chart import chart_options, latency_choices
from ui._compare import compare_options, compare_rows, importance_options
from ui._shell import STATE_COLORS, chip_slot, guard, header, state_chip, when
from ui._trials import trials_grid

__all__ = ["studies_page", "study_page"]


# --- studies -----------------------------------------------------------------------------------

_STUDY_COLUMNS: list[dict[str, Any]] = [
    {"name": "name", "label": "Study", "field": "study_id", "align": "left", "sortable": True},
    {"name": "state", "label": "Status", "field": "state", "align": "left", "sortable": True},
    {"name": "progress", "label": "Progress", "field": "progress", "align": "left"},
    {"name": "trials", "label": "Trials", "field": "trials", "align": "right"},
    {"name": "best", "label": "Best score", "field": "best", "align": "right"},
    {"name": "backend", "label": "Backend", "field": "backend", "align": "left"},
    {"name": "created", "label": "Created", "field": "created", "align": "left",
     "sortable": True},
]


def _study_row(view: StudyView) -> dict[str, Any]:
    backend = view.spec.get("backend") or {}
    gpus = backend.get("gpus")
    return {
        "study_id": view.study_id, "state": view.status,
        "progress": round(view.progress, 3),
        "trials": f"{view.n_finished} / {view.max_trials}",
        "best": _fmt(view.best.score) if view.best else "",
        "backend": f"{backend.get('kind', 'twin')}" + (f" · {gpus} GPUs" if gpus else ""),
        "created": when(view.created_at),
    }


def studies_page(svc: Service, request: Request) -> RedirectResponse | None:
    """Every study with its status and progress; a row opens the study."""
    if (redirect := guard(svc, request)) is not None:
        return redirect
    header("Studies")
    with ui.column().classes("w-full px-6 gap-2"):
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Studies").classes("text-2xl font-semibold")
            ui.button("New study", icon="add", on_click=lambda: ui.navigate.to("/new")) \
                .mark("new-study")
        rows = [_study_row(svc.view(r)) for r in svc.manager.store.list_studies()]
        table = ui.table(columns=_STUDY_COLUMNS, rows=rows, row_key="study_id") \
            .classes("w-full cursor-pointer").props("flat bordered").mark("studies")
        table.props('no-data-label="No studies yet: create one with New study."')
        chip_slot(table)
        table.add_slot("body-cell-progress", """
            <q-td :props="props" style="min-width: 160px">
              <q-linear-progress :value="props.value" size="12px" rounded color="primary" />
            </q-td>""")
        table.on("rowClick", lambda e: ui.navigate.to(f"/study/{e.args[1]['study_id']}"))

    def refresh() -> None:
        fresh = [_study_row(svc.view(r)) for r in svc.manager.store.list_studies()]
        if fresh != [dict(r) for r in table.rows]:
            table.rows[:] = fresh

    ui.timer(2.0, refresh)
    return None


# --- one study ---------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


class _StudyPage:
    """A study's page: built from the store once, then patched from the study's events."""

    def __init__(self, svc: Service, record: StudyRecord, spec: StudySpec) -> None:
        self.svc = svc
        self.store = svc.manager.store
        self.record = record
        self.spec = spec
        self.seq = 0
        self.trials: dict[str, TrialRecord] = {}
        self.y_metric = latency_choices(spec)[0]
        self.compared: list[str] = []
        self.importance_at = 0.0
        self.launch_cache: dict[tuple[str, str], str] = {}

    # building ------------------------------------------------------------------------------

    def build(self) -> None:
        events = self.store.events(self.record.study_id, after=0, limit=1_000_000)
        self.seq = events[-1].seq if events else 0
        self.trials = {t.trial_id: t for t in self.store.list_trials(self.record.study_id)}
        header(self.record.name)
        ui.add_css(".launch pre { white-space: pre-wrap; word-break: break-all; }")
        with ui.column().classes("w-full px-6 gap-3"):
            self._build_title()
            self._build_progress()
            with ui.row().classes("w-full gap-4 items-stretch no-wrap"):
                with ui.card().classes("grow min-w-0"):
                    self._build_chart()
                with ui.card().classes("w-[34rem] shrink-0").mark("best-card"):
                    self.best_card()
            self._build_trials()
            with ui.card().classes("w-full").mark("checks-card"):
                self.checks_card()
            with ui.expansion("Spec", icon="description").classes("w-full"):
                ui.code(yaml.safe_dump(self.record.spec, sort_keys=False), language="yaml") \
                    .classes("w-full")
        ui.timer(0.5, self.poll)

    def _build_title(self) -> None:
        record = self.record
        with ui.row().classes("w-full items-center justify-between"):
            with ui.row().classes("items-center gap-3"):
                ui.label(record.study_id).classes("text-2xl font-semibold").mark("study-id")
                self.chip = state_chip(record.state.value)
            with ui.row().classes("items-center gap-2"):
                self.stop_button = ui.button("Stop", icon="stop", color="red",
                                             on_click=self.stop).mark("stop")
                self.resume_button = ui.button("Resume", icon="play_arrow",
                                               on_click=self.resume).mark("resume")
                ui.button("Trials CSV", icon="download", on_click=self.download_csv) \
                    .props("outline").mark("csv")
                self.delete_button = ui.button("Delete", icon="delete", color="grey-8",
                                               on_click=self.delete).props("outline") \
                    .mark("delete")
        if self.spec.description:
            ui.label(self.spec.description).classes("text-gray-700").mark("description")
        self.message = ui.label("").classes("text-red-8").mark("message")
        self._sync_title()

    def _build_progress(self) -> None:
        with ui.row().classes("w-full items-center gap-4"):
            self.progress = ui.linear_progress(0, show_value=False, size="14px") \
                .props("rounded").classes("grow").mark("progress")
            self.progress_label = ui.label("").classes("text-sm").mark("progress-label")
        with ui.row().classes("items-center gap-2 text-sm text-gray-700"):
            self.dashboard = ui.row().classes("items-center gap-2")
        self._sync_progress()
        self._sync_dashboard()

    def _build_chart(self) -> None:
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Throughput vs latency, per measured level").classes("font-semibold")
            ui.select(latency_choices(self.spec), value=self.y_metric,
                      on_change=lambda e: self._set_y(e.value)).props("dense outlined") \
                .classes("w-40").mark("y-metric")
        self.chart = ui.echart(self._chart_options()).classes("w-full h-96").mark("chart")

    def _build_trials(self) -> None:
        self.grid = trials_grid(self.spec, self._select)
        numbers = self._numbers()
        for trial in sorted(self.trials.values(), key=lambda t: t.number):
            self.grid.put(trial, numbers)
        with ui.row().classes("w-full gap-4 items-stretch no-wrap"):
            with ui.card().classes("grow min-w-0").mark("compare-card"):
                with ui.row().classes("w-full items-center justify-between"):
                    ui.label("Compare trials").classes("text-lg font-semibold")
                    self.compare_select = ui.select(
                        {}, multiple=True, label="Trials (or tick rows above)",
                        on_change=lambda e: self._compare(list(e.value or []))) \
                        .props("dense outlined use-chips").classes("w-72").mark("compare")
                self._compare_options()
                self.compare_view()
            with ui.card().classes("w-[34rem] shrink-0").mark("importance-card"):
                ui.label("Parameter importance").classes("text-lg font-semibold")
                self.importance_chart()

    def _numbers(self) -> dict[str, int]:
        return {t.trial_id: t.number for t in self.trials.values()}

    def _select(self, trial_ids: list[str]) -> None:
        self.compare_select.value = trial_ids  # its on_change shows them

    def _compare_options(self) -> None:
        options = {t.trial_id: f"#{t.number}" for t in
                   sorted(self.trials.values(), key=lambda t: t.number) if t.levels}
        if options != self.compare_select.options:
            self.compare_select.set_options(options, value=[
                v for v in self.compare_select.value or [] if v in options])

    def _compare(self, trial_ids: list[str]) -> None:
        self.compared = trial_ids
        self.compare_view.refresh()

    @ui.refreshable_method
    def compare_view(self) -> None:
        """The selected trials' levels: the chosen latency against concurrency, one line per
        trial, and a table with the levels side by side."""
        trials = [self.trials[t] for t in self.compared if t in self.trials]
        if len(trials) < 2:
            ui.label("Choose two or more trials to see their levels side by side.") \
                .classes("text-gray-600")
            return
        ui.echart(compare_options(self.spec, trials, self.y_metric)) \
            .classes("w-full h-72").mark("compare-chart")
        columns, rows = compare_rows(self.spec, trials)
        ui.table(columns=columns, rows=rows, row_key="level") \
            .props("flat bordered dense").classes("w-full").mark("compare-table")

    @ui.refreshable_method
    def importance_chart(self) -> None:
        """How much each searched flag moved the score (Optuna's PED-ANOVA, as the CLI)."""
        self.importance_at = time.monotonic()
        importance = param_importance(self.spec, list(self.trials.values()))
        if not importance:
            ui.label("Shown from ten finished trials on.").classes("text-gray-600")
            return
        ui.echart(importance_options(importance)).classes("w-full h-64").mark("importance")

    @ui.refreshable_method
    def checks_card(self) -> None:
        """The confirmation's verdict and table, and every level whose measurement was
        flagged, with genai-bench's and the server's figures."""
        trials = sorted(self.trials.values(), key=lambda t: t.number)
        verdict = judge(trials, self.spec)
        ui.label("Confirmation").classes("text-lg font-semibold")
        if verdict is None:
            ui.label("No confirmation runs (yet): the best trial stands on one measurement.") \
                .classes("text-gray-600")
        else:
            _verdict_table(verdict)
        flagged = [(trial, level, flag, text) for trial in trials for level in trial.levels
                   for flag, text in level.flags().items()]
        if flagged:
            ui.label(f"Measurement warnings ({len(flagged)})").classes("font-semibold")
            for trial, level, flag, text in flagged:
                ui.label(f"⚠ trial {trial.number} {level.scenario} c={level.concurrency} "
                         f"{flag}: {text}").classes("text-sm text-orange-9").mark("warning")

    @ui.refreshable_method
    def best_card(self) -> None:
        """The best configuration so far with its exact launch command or manifest."""
        ui.label("Best configuration").classes("text-lg font-semibold")
        trial = self.trials.get(self.record.best_trial_id or "")
        if trial is None:
            ui.label("No trial has met the SLO yet.").classes("text-gray-600")
            return
        score = objective.score_label(self.spec.objective)
        ui.label(f"Trial {trial.number}: {score} {_fmt(trial.score)}").mark("best-score")
        with ui.row().classes("gap-1"):
            for name, value in trial.params.items():
                ui.badge(f"{name}={_fmt(value)}", color="blue-grey-6").props("outline")
        text = self._launch_text(trial)
        kind = str((self.record.spec.get("backend") or {}).get("kind", "twin"))
        language = BACKENDS[kind].EXPORT_LANGUAGE
        yaml_like = language == "yaml"
        ui.label("Manifest (YAML)" if yaml_like else "Launch command") \
            .classes("text-sm text-gray-700")
        ui.code(text, language=language).classes("w-full text-xs launch").mark("launch")
        ui.button(f"Download {'YAML' if yaml_like else 'command'}", icon="download",
                  on_click=self.download_best).props("outline").mark("download-best")

    def _launch_text(self, trial: TrialRecord) -> str:
        key = (trial.trial_id, repr(sorted(trial.params.items())))
        if key not in self.launch_cache:
            try:
                self.launch_cache[key] = self.svc.manager.driver.launch_text(self.spec,
                                                                             trial.params)
            except TunerError as e:
                return f"# cannot render: {e}"
        return self.launch_cache[key]

    # live updates --------------------------------------------------------------------------

    def poll(self) -> None:
        """Apply the study's new events: changed trial rows, chart, progress, best card."""
        study_id = self.record.study_id
        try:
            events = self.store.events(study_id, after=self.seq, limit=500)
            if not events:
                return
            self.seq = events[-1].seq
            changed = list(dict.fromkeys(e.trial_id for e in events if e.trial_id))
            for trial_id in changed:
                trial = self.store.get_trial(study_id, trial_id)
                if trial is not None:
                    self._put_trial(trial)
            record = self.store.get_study(study_id)
        except StudyNotFoundError:
            self.message.text = "This study was deleted."
            return
        best_changed = record.best_trial_id != self.record.best_trial_id or \
            self.record.best_trial_id in changed
        self.record = record
        if any(e.kind == EventKind.LEVEL_MEASURED for e in events):
            self.chart.options.update(self._chart_options())
            self.chart.update()
        if any(e.kind in _CHECK_EVENTS for e in events):
            self.checks_card.refresh()
            self._compare_options()
            if any(t in self.compared for t in changed):
                self.compare_view.refresh()
        # PED-ANOVA over hundreds of trials takes a moment: not on every event
        if any(e.kind == EventKind.STUDY_FINISHED for e in events) or (
                changed and time.monotonic() - self.importance_at > _IMPORTANCE_EVERY_S):
            self.importance_chart.refresh()
        self._sync_title()
        self._sync_progress()
        self._sync_dashboard()
        if best_changed:
            self.best_card.refresh()

    def _put_trial(self, trial: TrialRecord) -> None:
        self.trials[trial.trial_id] = trial
        self.grid.put(trial, self._numbers())

    def _sync_title(self) -> None:
        state = self.svc.view(self.record).status
        self.chip.text = state
        self.chip.background_color = STATE_COLORS.get(state, "grey-7")
        active = self.svc.manager.is_active(self.record.study_id)
        running = self.record.state in (StudyState.QUEUED, StudyState.RUNNING)
        self.stop_button.set_visibility(running)
        self.resume_button.set_visibility(not active and self.record.state.can_resume())
        self.delete_button.set_visibility(not active and self.record.state != StudyState.RUNNING)
        self.message.text = self.record.message or ""
        self.message.set_visibility(bool(self.record.message))

    def _sync_progress(self) -> None:
        view = self.svc.view(self.record)
        running = sum(1 for t in self.trials.values() if t.state.value == "running")
        self.progress.value = view.progress
        self.progress_label.text = (f"{view.n_finished} of {view.max_trials} trials finished"
                                    + (f" · {running} running" if running else ""))

    def _sync_dashboard(self) -> None:
        manager = self.svc.manager
        state = (manager.dashboard_url, manager.ray_dashboard, manager.ray_error,
                 manager.ray_started)
        if getattr(self, "_dashboard_state", None) == state:
            return
        self._dashboard_state = state
        self.dashboard.clear()
        with self.dashboard:
            ui.icon("hub")
            if manager.dashboard_url:
                ui.link("Ray dashboard", manager.dashboard_url, new_tab=True).mark("ray-link")
            elif manager.ray_dashboard and (manager.ray_error or not _dashboard_installed()):
                ui.label("Ray dashboard unavailable: it needs the ray[default] extra "
                         "(pip install 'ome-autotuner[dashboard]').").mark("ray-note")
            elif manager.ray_dashboard:
                ui.label("Ray dashboard: starting with Ray…").mark("ray-note")
            else:
                ui.label("Ray dashboard off (start the service with "
                         "`autotuner serve --ray-dashboard`).").mark("ray-note")

    def _chart_options(self) -> dict[str, Any]:
        trials = sorted(self.trials.values(), key=lambda t: t.number)
        return chart_options(self.spec, trials, self.y_metric)

    def _set_y(self, metric: str) -> None:
        self.y_metric = metric
        self.chart.options.clear()
        self.chart.options.update(self._chart_options())
        self.chart.update()

    # actions -------------------------------------------------------------------------------

    def stop(self) -> None:
        try:
            self.svc.manager.stop(self.record.study_id)
            ui.notify("Stopping: running trials end and their servers go.", type="info")
        except TunerError as e:
            ui.notify(str(e), type="negative")

    def resume(self) -> None:
        try:
            self.record = self.svc.manager.resume(self.record.study_id)
            self._sync_title()
            ui.notify("Queued to resume.", type="info")
        except TunerError as e:
            ui.notify(str(e), type="negative")

    def delete(self) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label(f"Delete study {self.record.study_id} with its trials and events?")
            with ui.row():
                ui.button("Delete", color="red", on_click=lambda: self._delete(dialog)) \
                    .mark("confirm-delete")
                ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.open()

    def _delete(self, dialog: ui.dialog) -> None:
        dialog.close()
        try:
            self.svc.manager.delete(self.record.study_id)
            ui.navigate.to("/")
        except TunerError as e:
            ui.notify(str(e), type="negative")

    def download_csv(self) -> None:
        text = trials_csv(self.store.list_trials(self.record.study_id))
        ui.download.content(text.encode(), f"{self.record.study_id}-trials.csv", "text/csv")

    def download_best(self) -> None:
        try:
            best = self.svc.best(self.record.study_id)
        except TunerError as e:
            ui.notify(str(e), type="negative")
            return
        ui.download.content(best.text.encode(), best.filename, best.media_type)


_IMPORTANCE_EVERY_S = 5.0
_CHECK_EVENTS = (EventKind.LEVEL_MEASURED, EventKind.TRIAL_FINISHED, EventKind.CONFIRMATION)


def _verdict_table(verdict: Verdict) -> None:
    """The verdict's reason over one row per confirmed configuration: runs, and the score's
    mean with its 95 % interval (and the method that gave it)."""
    ui.label(f"Verdict: {verdict.reason}").mark("verdict")
    columns = [{"name": n, "label": label, "field": n, "align": "left"} for n, label in
               (("number", "#"), ("gpus", "GPUs"), ("runs", "Runs"),
                ("score", "Score: mean [95 % interval]"), ("verdict", "Verdict"))]
    rows = []
    for c in verdict.candidates:
        score = c.metrics.get("score")
        mark = "winner" if c.trial_id == verdict.winner else \
            "tie" if c.trial_id in verdict.tied else ""
        rows.append({
            "number": c.number, "gpus": c.gpus,
            "runs": (score.n if score else 0) + c.failed_runs,
            "score": "" if score is None else
            f"{_fmt(score.mean)} [{_fmt(score.low)}, {_fmt(score.high)}] ({score.method})",
            "verdict": f"{c.failed_runs} run(s) failed" if c.failed_runs else mark})
    ui.table(columns=columns, rows=rows, row_key="number").props("flat bordered dense") \
        .classes("w-full").mark("confirmation")


def _dashboard_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiohttp_cors") is not None


def study_page(svc: Service, request: Request, study_id: str) -> RedirectResponse | None:
    """A study, live: progress, trials, throughput-vs-latency chart and best configuration."""
    if (redirect := guard(svc, request)) is not None:
        return redirect
    try:
        record = svc.manager.store.get_study(study_id)
    except StudyNotFoundError:
        header("Not found")
        with ui.column().classes("px-6"):
            ui.label(f"There is no study '{study_id}'.").classes("text-xl")
            ui.link("All studies", "/")
        return None
    _StudyPage(svc, record, study_spec(record)).build()
    return None
