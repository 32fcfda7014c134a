"""Rich views of a study for the CLI: the live trials table with a progress bar, and summaries."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuner import objective
from tuner.spec import StudySpec, spec_from_dict
from tuner.store import Store, StudyRecord, TrialRecord, TrialState

if TYPE_CHECKING:
    from tuner.search import Verdict

__all__ = [
    "LiveView",
    "confirmation_table",
    "measurement_warnings",
    "pareto_table",
    "studies_table",
    "trials_table",
]

_STATE_STYLE = {
    TrialState.COMPLETED: "green",
    TrialState.FAILED: "red",
    TrialState.STOPPED: "yellow",
    TrialState.RUNNING: "cyan",
    TrialState.PENDING: "dim",
    TrialState.INTERRUPTED: "magenta",
}


def trials_table(spec: StudySpec, trials: list[TrialRecord], best_id: str | None) -> Table:
    """One row per trial: params, state, reason, score and the scoring level's latencies."""
    names = sorted(spec.space)
    table = Table(
        title=f"{spec.name}: {objective.score_label(spec.objective)} under the SLO",
        title_justify="left",
        expand=False,
    )
    table.add_column("#", justify="right")
    for name in names:
        table.add_column(name)
    columns = ("state", "score", "c", "ttft p99 ms", "tpot p99 ms", "time s", "flags", "node",
               "reason")
    for column in columns:
        table.add_column(column, justify="left" if column in columns[-3:] else "right")
    numbers = {t.trial_id: t.number for t in trials}
    for trial in trials:
        level = objective.best_level(trial.levels, spec.objective)
        mark = " *" if trial.trial_id == best_id else ""
        reason = trial.reason or ""
        if trial.confirms is not None:
            reason = f"re-run of #{numbers.get(trial.confirms, '?')}" + (
                f", {reason}" if reason else ""
            )
        table.add_row(
            f"{trial.number}{mark}",
            *[str(trial.params.get(n, "")) for n in names],
            f"[{_STATE_STYLE[trial.state]}]{trial.state.value}[/]",
            f"{trial.score:.1f}" if trial.score is not None else "-",
            str(level.concurrency) if level else "-",
            _num(level.ttft_p99_ms if level else None),
            _num(level.tpot_p99_ms if level else None),
            _time(trial),
            _flags(trial),
            trial.node_ip or "-",
            reason + (f": {trial.message[:60]}" if trial.message else ""),
        )
    return table


def _time(trial: TrialRecord) -> str:
    """Seconds the trial spent deploying, warming up and measuring (``-`` before any); the
    UI's grid and trials.csv have each apart."""
    return _num(sum(trial.timings.values())) if trial.timings else "-"


def _flags(trial: TrialRecord) -> str:
    """``client_bound x2, host_overloaded``: the trial's flagged levels, by flag."""
    counts = trial.flag_counts()
    return ", ".join(f"{flag} x{n}" if n > 1 else flag for flag, n in counts.items())


def measurement_warnings(trials: list[TrialRecord]) -> list[str]:
    """One line per flag raised: the trial, the level and both figures."""
    return [
        f"trial {trial.number} {level.scenario} c={level.concurrency} {flag}: {text}"
        for trial in trials
        for level in trial.levels
        for flag, text in level.flags().items()
    ]


def confirmation_table(spec: StudySpec, verdict: Verdict) -> Table:
    """One row per confirmed configuration: runs, and mean with 95 % interval per metric."""
    names = ["score", objective.metric_name(spec.objective), *spec.objective.slo.bounds()]
    names = [n for n in dict.fromkeys(names) if n != "error_rate"]
    methods = {e.method for c in verdict.candidates for name, e in c.metrics.items()
               if name in names and e.n > 1}
    method = " and ".join(sorted(methods)) or "single runs"
    table = Table(
        title=f"confirmation: mean and 95 % interval over runs ({method})",
        caption="log-t: Student's t on the logarithms (stays positive); "
        "t>=0: Student's t clipped at 0",
        title_justify="left",
    )
    for column in ("#", "gpus", "runs", *names, "verdict"):
        table.add_column(column, justify="left" if column == "verdict" else "right")
    for c in verdict.candidates:
        mark = (
            "winner"
            if c.trial_id == verdict.winner
            else "tie"
            if c.trial_id in verdict.tied
            else ""
        )
        if c.failed_runs:
            mark = f"{c.failed_runs} run(s) failed"
        cells = []
        for name in names:
            e = c.metrics.get(name)
            cells.append("-" if e is None else f"{e.mean:.1f} [{e.low:.1f}, {e.high:.1f}]")
        runs = (c.metrics["score"].n if "score" in c.metrics else 0) + c.failed_runs
        table.add_row(str(c.number), str(c.gpus), str(runs), *cells, mark)
    return table


def pareto_table(spec: StudySpec, front: list[dict[str, Any]]) -> Table:
    """The Pareto front of a multi-objective study, by ascending latency."""
    table = Table(
        title=f"Pareto front: {objective.score_label(spec.objective)} vs {spec.objective.pareto}",
        title_justify="left",
    )
    for column in ("#", "concurrency", "score", spec.objective.pareto or "latency", "params"):
        table.add_column(column, justify="left" if column == "params" else "right")
    for point in front:
        table.add_row(
            str(point["number"]),
            str(point["concurrency"]),
            f"{point['score']:.1f}",
            f"{point['latency']:.1f}",
            str(point["params"]),
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
