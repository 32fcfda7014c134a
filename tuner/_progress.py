"""Rich views of a study for the CLI: the live trials table with a progress bar, and summaries."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner import objective
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import Store, StudyRecord, TrialRecord, TrialState

__all__ = ["LiveView", "studies_table", "trials_table"]

_STATE_STYLE = {
    TrialState.COMPLETED: "green",
    TrialState.FAILED: "red",
    TrialState.STOPPED: "yellow",
    TrialState.RUNNING: "cyan",
    TrialState.PENDING: "dim",
}


def trials_table(spec: StudySpec, trials: list[TrialRecord], best_id: str | None) -> Table:
    """One row per trial: params, state, reason, score and the scoring level's latencies."""
    names = sorted(spec.space)
    table = Table(
        title=f"{spec.name}: {objective.metric_name(spec.objective)}"
        f"{' per GPU' if spec.objective.per_gpu else ''} under the SLO",
        title_justify="left",
        expand=False,
    )
    table.add_column("#", justify="right")
    for name in names:
        table.add_column(name)
    for column in ("state", "score", "c", "ttft p99 ms", "tpot p99 ms", "reason"):
        table.add_column(column, justify="right" if column != "reason" else "left")
    for trial in trials:
        level = objective.best_level(trial.levels, spec.objective) or {}
        mark = " *" if trial.trial_id == best_id else ""
        table.add_row(
            f"{trial.number}{mark}",
            *[str(trial.params.get(n, "")) for n in names],
            f"[{_STATE_STYLE[trial.state]}]{trial.state.value}[/]",
            f"{trial.score:.1f}" if trial.score is not None else "-",
            str(level.get("concurrency", "-")),
            _num(level.get("ttft_p99_ms")),
            _num(level.get("tpot_p99_ms")),
            (trial.reason or "") + (f": {trial.message[:60]}" if trial.message else ""),
        )
    return table


def studies_table(studies: list[StudyRecord]) -> Table:
    """One row per study."""
    table = Table(title="studies", title_justify="left")
    for column in ("study", "state", "trials", "best trial", "created"):
        table.add_column(column)
    import datetime

    for study in studies:
        created = datetime.datetime.fromtimestamp(study.created_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            study.study_id,
            study.state.value,
            f"{study.n_finished}/{study.n_trials}",
            study.best_trial_id or "-",
            created,
        )
    return table


def _num(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) else "-"


class LiveView:
    """Redraws the trials table and a progress bar from the store while a study runs."""

    def __init__(self, store: Store, spec: StudySpec, console: Console) -> None:
        self._store = store
        self._spec = spec
        self._console = console
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.study_id: str | None = None

    def start(self, study_id: str) -> None:
        """Begin redrawing (in a thread) for this study."""
        self.study_id = study_id
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Draw once more and stop."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _render(self, progress: Progress, task: Any) -> Group:
        assert self.study_id is not None
        study = self._store.get_study(self.study_id)
        trials = self._store.list_trials(self.study_id)
        finished = sum(1 for t in trials if t.state.is_finished())
        progress.update(task, completed=finished, total=max(self._spec.max_trials, len(trials)))
        spec = spec_from_dict(study.spec)
        return Group(trials_table(spec, trials, study.best_trial_id), progress)

    def _loop(self) -> None:
        progress = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
        )
        task = progress.add_task("trials", total=self._spec.max_trials)
        with Live(console=self._console, refresh_per_second=4, transient=False) as live:
            while not self._done.wait(0.5):
                live.update(self._render(progress, task))
            live.update(self._render(progress, task))
