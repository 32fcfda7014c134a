"""What every way of running trials shares when it records them: the number a new trial gets
(a resumed study's re-run takes its old trial's), and the study's best trial kept current."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuner.store import Store, TrialRecord, TrialState

__all__ = ["BestTrial", "rerun_number"]


def rerun_number(
    store: Store, study_id: str, params: Mapping[str, Any], reruns: dict[str, Mapping[str, Any]]
) -> tuple[int, str] | None:
    """The number a new trial with ``params`` takes over, and the trial it replaces; None
    when it replaces none (it gets the study's next number).

    In a resumed study, the first new trial with the config of a trial the dead driver left
    unfinished (``reruns``: id -> config) takes that trial's place and number, so each is
    counted once; the old row is deleted and the entry removed from ``reruns``.
    """
    replaced = next((old for old, config in reruns.items() if dict(config) == params), None)
    if replaced is None:
        return None
    del reruns[replaced]
    number = next(t.number for t in store.list_trials(study_id) if t.trial_id == replaced)
    store.delete_trial(study_id, replaced)
    return number, replaced


class BestTrial:
    """Keeps the study's best trial current as trials are recorded.

    The scores of the trials that may be best are read from the store once (a resumed study's
    finished trials are in it), then kept here: one result must not cost a read of every
    trial. A failed trial and a confirmation re-run are never the best.
    """

    def __init__(self, store: Store, study_id: str, mode: str) -> None:
        self._store = store
        self._study_id = study_id
        self._mode = mode
        self._scores: dict[str, float] | None = None
        self._best: str | None = None

    def update(self, record: TrialRecord) -> None:
        """Take ``record``'s new state into account, and store the best if it changed."""
        if self._scores is None:
            self._scores = {
                t.trial_id: t.score for t in self._store.list_trials(self._study_id)
                if _may_be_best(t) and t.score is not None
            }
        if _may_be_best(record) and record.score is not None:
            self._scores[record.trial_id] = record.score
        else:
            self._scores.pop(record.trial_id, None)
        scores = self._scores
        pick = max if self._mode == "max" else min
        best = pick(scores, key=scores.__getitem__) if scores else None
        if best != self._best:
            self._store.set_best(self._study_id, best)
            self._best = best


def _may_be_best(trial: TrialRecord) -> bool:
    return trial.state != TrialState.FAILED and trial.confirms is None
