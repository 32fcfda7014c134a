"""The new-study page: a form that builds the same spec the API takes, or the spec as YAML."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from service import Service
from tuner import objective
from tuner.exceptions import SpecError, TunerError
from tuner.spec import GPU_TYPES, StudySpec, spec_from_dict
from ui._shell import guard, header
from ui._spec_form import (
    ALGORITHMS,
    FLAG_NAMES,
    KINDS,
    SLO_FIELDS,
    SpecForm,
    as_text,
    quickstart_text,
)

__all__ = ["new_study_page"]

class _NewStudyPage:
    """Form and YAML tabs over one :class:`SpecForm`."""

    def __init__(self, svc: Service, text: str) -> None:
        self.svc = svc
        data = yaml.safe_load(text) if text.strip() else {}
        self.form = SpecForm(data if isinstance(data, dict) else {})
        self.yaml_text = text
        self.yaml_dirty = False
        self.form_dirty = False
        self.inputs: dict[str, Any] = {}
        self.row_inputs: list[Any] = []
        self.rendered_kinds: list[str] = []
        self.ready = False  # handlers fire while the page is built: ignore those

    def build(self) -> None:
        header("New study")
        with ui.column().classes("w-full px-6 gap-2 max-w-5xl"):
            ui.label("New study").classes("text-2xl font-semibold")
            with ui.tabs(on_change=self.switched).props("align=left").classes("w-full") as tabs:
                self.form_tab = ui.tab("Form", icon="tune").mark("form-tab")
                self.yaml_tab = ui.tab("Edit as YAML", icon="code").mark("yaml-tab")
            with ui.tab_panels(tabs, value=self.form_tab).classes("w-full"):
                with ui.tab_panel(self.form_tab):
                    self._build_form()
                with ui.tab_panel(self.yaml_tab):
                    self._build_yaml()
            self.summary = ui.column().classes("w-full gap-0").mark("errors")
            with ui.row().classes("gap-2"):
                ui.button("Submit study", icon="rocket_launch", on_click=self.submit) \
                    .mark("submit")
                ui.button("Check", icon="rule", on_click=self.check).props("outline") \
                    .mark("check")
        self.tabs = tabs
        self.ready = True
        self.check(quiet=True)

    # the form ------------------------------------------------------------------------------

    def _field(self, element: Any, path: str) -> Any:
        # the spec is checked as a whole on each change; NiceGUI's own per-field check would
        # clear the error again right after
        self.inputs[path] = element.without_auto_validation() \
            if hasattr(element, "without_auto_validation") else element
        return element

    def _build_form(self) -> None:
        f = self.form.f
        changed = self.changed
        with ui.card().classes("w-full"):
            ui.label("Study and model").classes("font-semibold")
            with ui.row().classes("w-full"):
                self._field(ui.input("Name", on_change=changed).bind_value(f, "name")
                            .props("for=study-name hint='lower-case letters, digits, dashes'")
                            .mark("name"), "name")
                self._field(ui.input("Model", on_change=changed).bind_value(f, "model_name")
                            .classes("w-72").mark("model"), "model.name")
                self._field(ui.input("Tokenizer (optional)", on_change=changed)
                            .bind_value(f, "model_tokenizer").classes("w-72"), "model.tokenizer")
            ui.input("Description", on_change=changed).bind_value(f, "description") \
                .classes("w-full")
        with ui.card().classes("w-full"):
            ui.label("Backend").classes("font-semibold")
            with ui.row().classes("w-full items-start"):
                self._field(ui.select(KINDS, label="Kind",
                                      on_change=self.kind_changed)
                            .bind_value(f, "backend_kind").classes("w-32").mark("kind"),
                            "backend.kind")
                self._field(ui.number("GPUs", min=1, precision=0, on_change=changed)
                            .bind_value(f, "backend_gpus").classes("w-24").mark("gpus"),
                            "backend.gpus")
                self.sim = ui.row()
                with self.sim:
                    self._field(ui.select(list(GPU_TYPES), label="Simulated GPU",
                                          on_change=changed)
                                .bind_value(f, "backend_gpu").classes("w-32"), "backend.gpu")
                    self.time_scale = self._field(
                        ui.number("Time scale", min=1, max=50, on_change=changed)
                        .bind_value(f, "backend_time_scale").classes("w-28")
                        .props("for=time-scale"),
                        "backend.time_scale")
                self.ome = ui.row()
                with self.ome:
                    self._field(ui.input("Namespace", on_change=changed)
                                .bind_value(f, "ome_namespace"), "backend.namespace")
                    self._field(ui.input("Base model", on_change=changed)
                                .bind_value(f, "ome_base_model"), "backend.base_model")
                    self._field(ui.input("Runtime", on_change=changed)
                                .bind_value(f, "ome_runtime"), "backend.runtime")
            self._show_backend()
        with ui.card().classes("w-full"):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label("Search space (SGLang flags, dashes as underscores)") \
                    .classes("font-semibold")
                ui.button("Add flag", icon="add", on_click=self.add_row).props("flat") \
                    .mark("add-flag")
            self.space_rows()
        with ui.card().classes("w-full"):
            ui.label("Workload").classes("font-semibold")
            with ui.row().classes("w-full"):
                self._field(ui.input("Scenarios", on_change=changed).bind_value(f, "scenarios")
                            .classes("w-64")
                            .props("hint='e.g. D(1024,256), N(480,240)/(300,150)'"),
                            "workload.scenarios")
                self._field(ui.input("Concurrency ladder", on_change=changed)
                            .bind_value(f, "concurrency").classes("w-48")
                            .props("for=concurrency hint='ascending, e.g. 8, 32, 64'")
                            .mark("concurrency"),
                            "workload.concurrency")
                self._field(ui.number("Requests per level", min=1, precision=0,
                                      on_change=changed).bind_value(f, "max_requests"),
                            "workload.max_requests_per_level")
                self._field(ui.number("Seconds per level", min=1, precision=0,
                                      on_change=changed).bind_value(f, "max_seconds"),
                            "workload.max_seconds_per_level")
        with ui.card().classes("w-full"):
            ui.label("SLO and objective").classes("font-semibold")
            with ui.row().classes("w-full"):
                for key, label in SLO_FIELDS.items():
                    self._field(ui.number(label, min=0, on_change=changed)
                                .bind_value(f, f"slo_{key}").classes("w-36").mark(f"slo-{key}"),
                                f"objective.slo.{key}")
            with ui.row().classes("w-full items-center"):
                self._field(ui.select(["goodput", *objective.METRICS], label="Metric",
                                      on_change=changed).bind_value(f, "metric")
                            .classes("w-48"), "objective.metric")
                self._field(ui.select(["output", "total", "requests"], label="Goodput counts",
                                      on_change=changed).bind_value(f, "throughput")
                            .classes("w-36"), "objective.throughput")
                self._field(ui.select(["auto", "max", "min"], label="Direction",
                                      on_change=changed).bind_value(f, "direction")
                            .classes("w-28"), "objective.direction")
                ui.switch("Per GPU", on_change=changed).bind_value(f, "per_gpu")
        with ui.card().classes("w-full"):
            ui.label("Search").classes("font-semibold")
            with ui.row().classes("w-full"):
                self._field(ui.select(ALGORITHMS, label="Algorithm",
                                      on_change=changed).bind_value(f, "algorithm")
                            .classes("w-32").mark("algorithm"), "search.algorithm")
                self._field(ui.number("Max trials (empty: default)", min=1, precision=0,
                                      on_change=changed).bind_value(f, "max_trials")
                            .classes("w-48").props("for=max-trials").mark("max-trials"),
                            "search.max_trials")
                self._field(ui.number("Seed", precision=0, on_change=changed)
                            .bind_value(f, "seed").classes("w-24"), "search.seed")
                self._field(ui.number("Trials at once (empty: GPUs allow)", min=1, precision=0,
                                      on_change=changed).bind_value(f, "max_concurrent")
                            .classes("w-56"), "search.max_concurrent")
            ui.label("Fixed flags, constraints and other SLO bounds: edit as YAML.") \
                .classes("text-sm text-gray-600")

    @ui.refreshable_method
    def space_rows(self) -> None:
        """One row per searched flag: a list of values or a numeric range."""
        changed = self.changed
        self.row_inputs.clear()
        self.rendered_kinds = [row["kind"] for row in self.form.rows]
        building, self.ready = self.ready, False  # bindings fire handlers while rows are built
        for index, row in enumerate(self.form.rows):
            with ui.row().classes("w-full items-center gap-2").mark(f"flag-{index}"):
                name = ui.input("Flag", on_change=changed, autocomplete=FLAG_NAMES) \
                    .bind_value(row, "name").classes("w-56").mark("flag-name") \
                    .without_auto_validation()
                self.row_inputs.append(name)
                ui.toggle(["values", "range"], on_change=lambda _: self.kind_row()) \
                    .bind_value(row, "kind").props("dense")
                if row["kind"] == "values":
                    ui.input("Values (comma separated)", on_change=changed) \
                        .bind_value(row, "values").classes("w-72").mark("flag-values")
                else:
                    ui.number("Low", on_change=changed).bind_value(row, "low").classes("w-24")
                    ui.number("High", on_change=changed).bind_value(row, "high") \
                        .classes("w-24")
                    ui.number("Step", on_change=changed).bind_value(row, "step") \
                        .classes("w-20")
                    ui.checkbox("log", on_change=changed).bind_value(row, "log")
                    ui.checkbox("integer", on_change=changed).bind_value(row, "int")
                ui.button(icon="delete", on_click=lambda i=index: self.remove_row(i)) \
                    .props("flat round dense")
        self.ready = building

    def add_row(self) -> None:
        self.form.add_row()
        self.space_rows.refresh()

    def remove_row(self, index: int) -> None:
        del self.form.rows[index]
        self.space_rows.refresh()
        self.changed()

    def kind_row(self) -> None:
        if not self.ready or [r["kind"] for r in self.form.rows] == self.rendered_kinds:
            return
        self.space_rows.refresh()
        self.changed()

    def kind_changed(self) -> None:
        if not self.ready:
            return
        self._show_backend()
        self.changed()

    def _show_backend(self) -> None:
        kind = self.form.f["backend_kind"]
        self.sim.set_visibility(kind in ("twin", "estimate"))
        self.time_scale.set_visibility(kind == "twin")
        self.ome.set_visibility(kind == "ome")

    def changed(self, *_: Any) -> None:
        if not self.ready:
            return
        self.form_dirty = True
        self.check(quiet=True)

    # YAML ----------------------------------------------------------------------------------

    def _build_yaml(self) -> None:
        ui.label("The spec as the API takes it (POST /api/studies).").classes("text-sm")
        self.editor = ui.textarea(value=self.yaml_text, on_change=self.yaml_changed) \
            .props("outlined autogrow input-style='font-family: monospace; font-size: 13px'") \
            .classes("w-full").mark("yaml")

    def yaml_changed(self) -> None:
        self.yaml_dirty = True

    def switched(self, event: Any) -> None:
        """Carry edits over between the tabs."""
        to_yaml = event.value in (self.yaml_tab, "Edit as YAML")
        if to_yaml and self.form_dirty:
            self.editor.value = yaml.safe_dump(self.form.to_dict(), sort_keys=False)
            self.form_dirty = self.yaml_dirty = False
        elif not to_yaml and self.yaml_dirty:
            data = self._yaml_data()
            if data is not None:
                self.form.load(data)
                self.space_rows.refresh()
                self._show_backend()
                self.yaml_dirty = self.form_dirty = False
        self.check(quiet=True)

    def _yaml_data(self) -> dict[str, Any] | None:
        try:
            data = yaml.safe_load(self.editor.value or "")
        except yaml.YAMLError as e:
            self._show_errors([("yaml", f"not valid YAML: {e}")])
            return None
        if not isinstance(data, dict):
            self._show_errors([("yaml", "a spec must be a mapping of fields")])
            return None
        return data

    # checking and submitting ---------------------------------------------------------------

    def _current(self) -> tuple[StudySpec | None, list[tuple[str, str]]]:
        if self.tabs.value in (self.yaml_tab, "Edit as YAML"):
            data = self._yaml_data()
            if data is None:
                return None, [("yaml", "not a valid YAML mapping")]
            try:
                return spec_from_dict(data, source="the YAML",
                                      base_dir=self.svc.manager.datasets_dir), []
            except SpecError as e:
                return None, e.errors or [("spec", str(e))]
        return self.form.validate()

    def check(self, quiet: bool = False) -> StudySpec | None:
        """Validate, mark each bad field inline and list every error under the form."""
        if not self.ready:
            return None
        spec, errors = self._current()
        self._show_errors(errors, spec.cautions() if spec is not None else [])
        if not quiet:
            if spec is not None:
                ui.notify("The spec is valid.", type="positive")
            else:
                ui.notify(f"{len(errors)} problem(s); see below the form.", type="warning")
        return spec

    def _show_errors(self, errors: list[tuple[str, str]], cautions: Sequence[str] = ()) -> None:
        for element in [*self.inputs.values(), *self.row_inputs]:
            element.error = None
        for path, reason in errors:
            element = self._input_for(path)
            if element is not None:
                element.error = reason if element.error is None else f"{element.error}; {reason}"
        self.summary.clear()
        with self.summary:
            for path, reason in errors:
                ui.label(f"{path}: {reason}").classes("text-red-8 text-sm").mark("error")
            for caution in cautions:
                ui.label(f"warning: {caution}").classes("text-orange-9 text-sm").mark("caution")

    def _input_for(self, path: str) -> Any:
        parts = path.split(".")
        if parts[0] == "space" and len(parts) > 1:
            for row, element in zip(self.form.rows, self.row_inputs, strict=False):
                if as_text(row["name"]) == parts[1]:
                    return element
        while parts:
            element = self.inputs.get(".".join(parts))
            if element is not None:
                return element
            parts.pop()
        return None

    def submit(self) -> None:
        spec = self.check(quiet=True)
        if spec is None:
            ui.notify("Fix the problems listed below the form first.", type="warning")
            return
        try:
            record = self.svc.manager.submit(spec)
        except TunerError as e:
            ui.notify(str(e), type="negative", multi_line=True)
            return
        ui.navigate.to(f"/study/{record.study_id}")


def new_study_page(svc: Service, request: Request) -> RedirectResponse | None:
    """A form for a new study, prefilled with the quickstart, and its YAML view."""
    if (redirect := guard(svc, request)) is not None:
        return redirect
    _NewStudyPage(svc, quickstart_text()).build()
    return None
